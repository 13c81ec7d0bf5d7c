import { type AssignResult, BACKGROUND, IGNORE } from './types.js';

/** Fills `labels` and `numPositives` from `gtIndex`; the one place a result is put together. */
export function makeResult(
  gtIndex: Int32Array,
  iou: Float32Array,
  gtLabels: ArrayLike<number>,
  numGts: number,
  iouOf: AssignResult['iouOf'],
  weights?: Float32Array,
): AssignResult {
  const labels = new Int32Array(gtIndex.length);
  let numPositives = 0;
  for (let i = 0; i < gtIndex.length; i++) {
    const j = gtIndex[i]!;
    if (j >= 0) {
      labels[i] = gtLabels[j]!;
      numPositives++;
    } else {
      labels[i] = j;
      iou[i] = 0;
    }
  }
  const result: AssignResult = { numGts, gtIndex, labels, iou, iouOf, numPositives };
  if (weights) result.weights = weights;
  return result;
}

/** All anchors background: the answer for an image without ground truth. */
export function allBackground(n: number, iouOf: AssignResult['iouOf']): AssignResult {
  return makeResult(new Int32Array(n).fill(BACKGROUND), new Float32Array(n), [], 0, iouOf);
}

/**
 * Gives each ground truth that ended with no positive one anchor from its
 * ranked candidate list (`ranked(j)`, best first, asked for only when
 * needed): the first one that is free (background or ignored) or whose
 * current owner keeps at least one other positive. A ground truth whose
 * candidates are all the sole positive of some other ground truth stays
 * empty (two identical boxes competing for a single anchor). `onTake(i, j)`
 * lets the caller update per-anchor fields.
 */
export function ensureOnePositive(
  gtIndex: Int32Array,
  numGts: number,
  ranked: (gt: number) => ArrayLike<number>,
  onTake: (anchor: number, gt: number) => void,
): number {
  const count = new Int32Array(numGts);
  for (let i = 0; i < gtIndex.length; i++) if (gtIndex[i]! >= 0) count[gtIndex[i]!]++;
  let rescued = 0;
  for (let j = 0; j < numGts; j++) {
    if (count[j]! > 0) continue;
    const list = ranked(j);
    for (let r = 0; r < list.length; r++) {
      const a = list[r]!;
      const owner = gtIndex[a]!;
      if (owner >= 0 && count[owner]! <= 1) continue;
      if (owner >= 0) count[owner]--;
      gtIndex[a] = j;
      count[j]++;
      onTake(a, j);
      rescued++;
      break;
    }
  }
  return rescued;
}

export { BACKGROUND, IGNORE };
