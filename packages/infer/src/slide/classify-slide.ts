import { type CellCall, cropWindow } from '@bmc/classify';
import type { CellClassifier } from '../cell-classifier.js';
import type { Slide, SlideLevel } from './open.js';

type Box = readonly [number, number, number, number];

/**
 * Types a slide's cells without decoding the slide: cells are grouped by `block` x `block` squares
 * of the level, and each group is classified on one region read that covers every cell's crop
 * window (plus the pixel bilinear sampling reaches). The region is cut only at the slide's edges,
 * where the crop rule clamps anyway, so each cell gets the crop it would get from the whole image.
 * Boxes are in level-0 pixels, as the slide's detections; the calls come back in their order.
 */
export async function classifySlideCells(
  classifier: CellClassifier,
  slide: Slide,
  level: SlideLevel,
  boxes: readonly Box[],
  block = 1024,
): Promise<CellCall[]> {
  const ds = level.downsample;
  const groups = new Map<string, number[]>();
  const inLevel = boxes.map((b) => [b[0] / ds, b[1] / ds, b[2] / ds, b[3] / ds] as const);
  inLevel.forEach((b, i) => {
    const key = `${Math.floor((b[0] + b[2]) / 2 / block)},${Math.floor((b[1] + b[3]) / 2 / block)}`;
    const group = groups.get(key);
    if (group) group.push(i);
    else groups.set(key, [i]);
  });
  const calls: CellCall[] = new Array(boxes.length);
  for (const members of groups.values()) {
    let x0 = Number.POSITIVE_INFINITY;
    let y0 = Number.POSITIVE_INFINITY;
    let x1 = Number.NEGATIVE_INFINITY;
    let y1 = Number.NEGATIVE_INFINITY;
    for (const i of members) {
      const w = cropWindow(inLevel[i]!, classifier.margin);
      x0 = Math.min(x0, w.x0);
      y0 = Math.min(y0, w.y0);
      x1 = Math.max(x1, w.x0 + w.side);
      y1 = Math.max(y1, w.y0 + w.side);
    }
    const left = Math.max(0, Math.floor(x0) - 1);
    const top = Math.max(0, Math.floor(y0) - 1);
    const right = Math.min(level.width, Math.ceil(x1) + 2);
    const bottom = Math.min(level.height, Math.ceil(y1) + 2);
    const region = await slide.read(level, { left, top, width: right - left, height: bottom - top });
    const shifted = members.map((i) => {
      const b = inLevel[i]!;
      return [b[0] - left, b[1] - top, b[2] - left, b[3] - top] as const;
    });
    const got = await classifier.classify(region, shifted);
    members.forEach((i, k) => {
      calls[i] = got[k]!;
    });
  }
  return calls;
}
