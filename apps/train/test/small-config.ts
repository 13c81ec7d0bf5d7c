import { type AssignerConfig, createAssigner } from '@bmc/assigners';
import type { Detector } from '@bmc/heads-iou';
import type { TrainConfig } from '../src/config/schema.js';
import { lossOptions } from '../src/train/detector.js';
import { Sgd } from '../src/train/sgd.js';
import type { StepContext } from '../src/train/step.js';

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

/**
 * A step context for `detector` at `size` px with one class: SGD (momentum 0.9, weight decay 1e-4) and
 * clipping at 10 unless `overrides` say otherwise.
 */
export function stepContext(
  detector: Detector,
  config: TrainConfig,
  assigner: AssignerConfig['type'],
  size: number,
  overrides: Partial<StepContext> = {},
): StepContext {
  return {
    model: detector.model,
    assigner: createAssigner({ type: assigner }),
    anchors: detector.anchorsFor(size, size),
    strides: detector.strides,
    numClasses: 1,
    loss: lossOptions(config),
    optimizer: new Sgd({ momentum: 0.9, weightDecay: 1e-4 }),
    clipGradNorm: 10,
    ...overrides,
  };
}
