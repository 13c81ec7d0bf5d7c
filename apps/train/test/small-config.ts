/** `--set` entries that turn augmentation off, so a batch is the same images in every run. */
export const NO_AUGMENT = [
  'data.augment.hflip=0',
  'data.augment.vflip=0',
  'data.augment.scale=[1, 1]',
  'data.augment.colorJitter=0',
  'data.augment.hed=0',
];

/** A synthetic-smear config small enough for CI: `size` px images, `train` training images, batch 4. */
export function smallSet(size: number, train: number, evalImages: number): string[] {
  return [
    `data.imageSize=${size}`,
    `data.synthetic.train=${train}`,
    `data.synthetic.val=${evalImages}`,
    `data.synthetic.test=${evalImages}`,
    ...NO_AUGMENT,
    'optim.batchSize=4',
  ];
}
