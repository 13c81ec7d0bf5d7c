import { join } from 'node:path';
import { type Dataset, readCoco, readCvat, readLabelStudio, readVoc, readYolo } from '@bmc/data';
import { expect } from 'vitest';

/** The shipped detector and the real data the `bmc label` tests run on (they skip without them). */
export const MODEL = new URL('../../../packages/models/models/blood-smear/model.onnx', import.meta.url)
  .pathname;
export const DATA = new URL('../../../../shared/data/', import.meta.url).pathname;
export const TXL = join(DATA, 'txl-pbc', 'images', 'train');

/** A box with its class name: `[name, x1, y1, x2, y2]`. */
export type NamedBox = [string, number, number, number, number];

/** Boxes of each image by file name. */
export function boxesByImage(ds: Dataset): Record<string, NamedBox[]> {
  const out: Record<string, NamedBox[]> = {};
  for (const im of ds.images)
    out[im.file.split('/').pop()!] = Array.from(
      im.labels,
      (l, k) => [ds.categories[l]!.name, ...Array.from(im.boxes.subarray(4 * k, 4 * k + 4))] as NamedBox,
    );
  return out;
}

/**
 * A batch folder's five formats (COCO, VOC, YOLO, CVAT, Label Studio predictions) each hold the
 * reference's images with the same number of boxes, and every reference box has a box of its
 * class within a pixel: VOC stores integer pixels (half a pixel off at most), the others within
 * 0.01 px of bmc detect's output, which it rounds to 0.01.
 */
export async function expectBatchAgrees(batch: string, ref: Record<string, NamedBox[]>): Promise<void> {
  const read = {
    coco: await readCoco(join(batch, 'coco.json')),
    voc: await readVoc(join(batch, 'voc')),
    yolo: await readYolo(join(batch, 'yolo')),
    cvat: await readCvat(join(batch, 'cvat.xml')),
    labelstudio: await readLabelStudio(join(batch, 'labelstudio.json'), {
      imageRoot: join(batch, 'images'),
      from: 'predictions',
    }),
  };
  for (const [format, ds] of Object.entries(read)) {
    const got = boxesByImage(ds);
    const tol = format === 'voc' ? 0.51 : 0.02;
    expect(Object.keys(got).sort(), format).toEqual(Object.keys(ref).sort());
    for (const [name, boxes] of Object.entries(ref)) {
      expect(got[name]!.length, `${format} ${name}`).toBe(boxes.length);
      for (const want of boxes) {
        const near = got[name]!.some(
          (g) =>
            g[0] === want[0] &&
            [1, 2, 3, 4].every((c) => Math.abs((g[c] as number) - (want[c] as number)) <= tol),
        );
        expect(near, `${format} ${name}: ${want.join(' ')}`).toBe(true);
      }
    }
  }
}
