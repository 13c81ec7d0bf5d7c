import { generateAnchors, panN2N5AnchorConfig } from '@bmc/core';
import { mulberry32 } from '@bmc/test-utils';
import { anchorFields } from '../src/index.js';

/** Small deterministic PRNG (mulberry32) so random cases are reproducible. */
export const rng = mulberry32;

/** bmc's N2-N5 anchors for an `h x w` input, as AssignInput fields. */
export function pyramid(h: number, w: number) {
  const config = panN2N5AnchorConfig();
  return anchorFields(generateAnchors(config, h, w), config);
}

/** `g` random boxes of side 8..maxSide inside a `w x h` image. */
export function randomBoxes(rand: () => number, g: number, w: number, h: number, maxSide = 80): Float32Array {
  const out = new Float32Array(4 * g);
  for (let j = 0; j < g; j++) {
    const bw = 8 + rand() * (maxSide - 8);
    const bh = 8 + rand() * (maxSide - 8);
    const x = rand() * (w - bw);
    const y = rand() * (h - bh);
    out.set([x, y, x + bw, y + bh], 4 * j);
  }
  return out;
}

/**
 * A stand-in for a network mid-training: each anchor predicts its own box
 * shifted part of the way towards the ground truth it overlaps most, and
 * class probabilities that grow with that overlap plus noise.
 */
export function fakePredictions(
  rand: () => number,
  anchors: ArrayLike<number>,
  gtBoxes: ArrayLike<number>,
  gtLabels: ArrayLike<number>,
  numClasses: number,
): { clsProbs: Float32Array; predBoxes: Float32Array } {
  const n = anchors.length / 4;
  const g = gtBoxes.length / 4;
  const clsProbs = new Float32Array(n * numClasses);
  const predBoxes = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    let best = -1;
    let bestIou = 0;
    for (let j = 0; j < g; j++) {
      const v = iouOf(anchors, i, gtBoxes, j);
      if (v > bestIou) {
        bestIou = v;
        best = j;
      }
    }
    const t = best >= 0 ? 0.3 + 0.5 * rand() : 0;
    for (let k = 0; k < 4; k++) {
      const a = anchors[4 * i + k]!;
      const target = best >= 0 ? gtBoxes[4 * best + k]! : a;
      predBoxes[4 * i + k] = a + t * (target - a) + (rand() - 0.5) * 2;
    }
    for (let c = 0; c < numClasses; c++) clsProbs[i * numClasses + c] = 0.02 * rand();
    if (best >= 0) clsProbs[i * numClasses + gtLabels[best]!] = Math.min(0.95, bestIou * (0.5 + rand()));
  }
  return { clsProbs, predBoxes };
}

export function iouOf(a: ArrayLike<number>, i: number, b: ArrayLike<number>, j: number): number {
  const w = Math.min(a[4 * i + 2]!, b[4 * j + 2]!) - Math.max(a[4 * i]!, b[4 * j]!);
  const h = Math.min(a[4 * i + 3]!, b[4 * j + 3]!) - Math.max(a[4 * i + 1]!, b[4 * j + 1]!);
  if (w <= 0 || h <= 0) return 0;
  const areaA = (a[4 * i + 2]! - a[4 * i]!) * (a[4 * i + 3]! - a[4 * i + 1]!);
  const areaB = (b[4 * j + 2]! - b[4 * j]!) * (b[4 * j + 3]! - b[4 * j + 1]!);
  return (w * h) / (areaA + areaB - w * h);
}
