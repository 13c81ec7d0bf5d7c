import { InvalidInputError } from '@bmc/core';

/**
 * Stride of each level from its anchor centres: the smallest positive gap
 * between the centres of consecutive anchors, which on a (y, x, anchor) grid
 * is the spacing of neighbouring locations.
 */
export function inferLevelStrides(anchors: ArrayLike<number>, levelStarts: Int32Array): Float64Array {
  const levels = levelStarts.length - 1;
  const out = new Float64Array(levels);
  for (let l = 0; l < levels; l++) {
    let best = Number.POSITIVE_INFINITY;
    for (let i = levelStarts[l]! + 1; i < levelStarts[l + 1]!; i++) {
      const dx =
        Math.abs(anchors[4 * i]! + anchors[4 * i + 2]! - anchors[4 * i - 4]! - anchors[4 * i - 2]!) / 2;
      const dy =
        Math.abs(anchors[4 * i + 1]! + anchors[4 * i + 3]! - anchors[4 * i - 3]! - anchors[4 * i - 1]!) / 2;
      if (dx > 1e-6 && dx < best) best = dx;
      if (dy > 1e-6 && dy < best) best = dy;
    }
    if (!Number.isFinite(best) && levelStarts[l + 1]! > levelStarts[l]!) {
      throw new InvalidInputError(
        `level ${l}: cannot infer the stride from a single anchor location; pass levelStrides`,
      );
    }
    out[l] = best;
  }
  return out;
}
