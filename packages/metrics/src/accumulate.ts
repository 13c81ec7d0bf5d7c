import { type CategoryMatches, FP, TP } from './evaluate-images.js';
import type { EvalParams } from './params.js';

/** numpy's `np.spacing(1)`, the epsilon pycocotools adds to the precision denominator. */
const EPS = 2.220446049250313e-16;

export interface Accumulated {
  /** `[T, R, K, A, M]` interpolated precision; -1 where a category has no ground truth. */
  precision: Float64Array;
  /** `[T, K, A, M]` final recall; -1 where a category has no ground truth. */
  recall: Float64Array;
  /** `[T, R, K, A, M]` score of the detection where each recall point is reached (0 past the end). */
  scores: Float64Array;
  /** `[T, R, K, A, M]` */
  counts: [number, number, number, number, number];
}

/**
 * Slot indices of one category in pycocotools' accumulate order: descending score,
 * ties in concatenation (image-major) order, like `np.argsort(-dtScores, kind='mergesort')`.
 */
export function sortedSlots(c: CategoryMatches): Int32Array {
  const idx = new Int32Array(c.count);
  for (let s = 0; s < c.count; s++) idx[s] = s;
  const sc = c.score;
  idx.sort((a, b) => sc[b]! - sc[a]! || a - b);
  return idx;
}

/**
 * pycocotools `accumulate()`, computed from TP events instead of full rc/pr arrays:
 * `np.searchsorted(rc, r, 'left')` lands on the first detection where the TP count c
 * reaches c / npig >= r, and the backward max of precision from there is the max of
 * precision at later TPs (precision only falls between TPs). Same float operations on
 * the same values, so the same results, without two float arrays per setting.
 */
export function accumulate(categories: CategoryMatches[], p: EvalParams): Accumulated {
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const K = categories.length;
  const A = p.areaRng.length;
  const M = p.maxDets.length;
  const AT = A * T;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const scores = new Float64Array(T * R * K * A * M).fill(-1);
  const stride = K * A * M;
  for (let k = 0; k < K; k++) {
    const c = categories[k]!;
    const order = sortedSlots(c);
    const S = c.count;
    // Gather once in sorted order, one row per (area, IoU): sequential scans below.
    const codes = new Uint8Array(AT * S);
    const rank = new Int32Array(S);
    const score = new Float64Array(S);
    for (let j = 0; j < S; j++) {
      const s = order[j]!;
      rank[j] = c.rank[s]!;
      score[j] = c.score[s]!;
      const src = s * AT;
      for (let q = 0; q < AT; q++) codes[q * S + j] = c.outcome[src + q]!;
    }
    let maxNpig = 0;
    for (let a = 0; a < A; a++) maxNpig = Math.max(maxNpig, c.numGt[a]!);
    // Precision and score at the c-th TP (index c, 1-based), then suffix max of precision.
    const prAt = new Float64Array(maxNpig + 2);
    const scoreAt = new Float64Array(maxNpig + 2);
    for (let m = 0; m < M; m++) {
      const maxDet = p.maxDets[m]!;
      for (let a = 0; a < A; a++) {
        const npig = c.numGt[a]!;
        if (npig === 0) continue;
        for (let t = 0; t < T; t++) {
          const row = codes.subarray((a * T + t) * S, (a * T + t + 1) * S);
          let tp = 0;
          let fp = 0;
          let nd = 0;
          let pr0 = 0;
          let score0 = 0;
          for (let j = 0; j < S; j++) {
            if (rank[j]! >= maxDet) continue;
            const o = row[j];
            if (o === TP) {
              tp++;
              prAt[tp] = tp / (fp + tp + EPS);
              scoreAt[tp] = score[j]!;
            } else if (o === FP) fp++;
            if (nd === 0) {
              pr0 = tp / (fp + tp + EPS);
              score0 = score[j]!;
            }
            nd++;
          }
          recall[((t * K + k) * A + a) * M + m] = nd ? tp / npig : 0;
          for (let q = tp - 1; q >= 1; q--) if (prAt[q + 1]! > prAt[q]!) prAt[q] = prAt[q + 1]!;
          const off = (k * A + a) * M + m;
          for (let r = 0; r < R; r++) {
            precision[(t * R + r) * stride + off] = 0;
            scores[(t * R + r) * stride + off] = 0;
          }
          if (nd === 0) continue;
          // Suffix max from index 0 includes the first detection's own precision.
          const head = tp > 0 ? Math.max(pr0, prAt[1]!) : pr0;
          let cnt = 0; // smallest TP count with cnt / npig >= recThr, found incrementally
          for (let r = 0; r < R; r++) {
            const v = p.recThrs[r]!;
            if (0 / npig >= v) {
              // rc[0] >= v: searchsorted gives index 0.
              precision[(t * R + r) * stride + off] = head;
              scores[(t * R + r) * stride + off] = score0;
              continue;
            }
            if (cnt < 1) cnt = 1;
            // recThrs may be unsorted in custom settings: restart the search when it goes down.
            if (cnt > 1 && (cnt - 1) / npig >= v) cnt = 1;
            while (cnt <= tp && cnt / npig < v) cnt++;
            // pycocotools stops filling at the first recall point past the end (IndexError).
            if (cnt > tp) break;
            // The first detection is the c-th TP only when c = 1 and it is a TP; its
            // precision is then prAt[1] anyway.
            precision[(t * R + r) * stride + off] = prAt[cnt]!;
            scores[(t * R + r) * stride + off] = scoreAt[cnt]!;
          }
        }
      }
    }
  }
  return { precision, recall, scores, counts: [T, R, K, A, M] };
}
