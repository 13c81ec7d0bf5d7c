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

/** pycocotools `accumulate()`. */
export function accumulate(categories: CategoryMatches[], p: EvalParams): Accumulated {
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const K = categories.length;
  const A = p.areaRng.length;
  const M = p.maxDets.length;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const scores = new Float64Array(T * R * K * A * M).fill(-1);
  let rc = new Float64Array(0);
  let pr = new Float64Array(0);
  for (let k = 0; k < K; k++) {
    const c = categories[k]!;
    const all = sortedSlots(c);
    for (let m = 0; m < M; m++) {
      const maxDet = p.maxDets[m]!;
      // A stable sort of a subsequence equals the subsequence of the stable sort, so the
      // per-maxDet order is a filter of the full order.
      const order = all.filter((s) => c.rank[s]! < maxDet);
      const nd = order.length;
      if (rc.length < nd) {
        rc = new Float64Array(nd);
        pr = new Float64Array(nd);
      }
      for (let a = 0; a < A; a++) {
        const npig = c.numGt[a]!;
        if (npig === 0) continue;
        for (let t = 0; t < T; t++) {
          const codes = c.outcome.subarray((a * T + t) * c.count, (a * T + t + 1) * c.count);
          let tp = 0;
          let fp = 0;
          for (let j = 0; j < nd; j++) {
            const o = codes[order[j]!];
            if (o === TP) tp++;
            else if (o === FP) fp++;
            rc[j] = tp / npig;
            pr[j] = tp / (fp + tp + EPS);
          }
          recall[((t * K + k) * A + a) * M + m] = nd ? rc[nd - 1]! : 0;
          for (let j = nd - 1; j > 0; j--) if (pr[j]! > pr[j - 1]!) pr[j - 1] = pr[j]!;
          const stride = K * A * M;
          const off = (k * A + a) * M + m;
          for (let r = 0; r < R; r++) {
            precision[(t * R + r) * stride + off] = 0;
            scores[(t * R + r) * stride + off] = 0;
          }
          for (let r = 0; r < R; r++) {
            const pi = searchLeft(rc, nd, p.recThrs[r]!);
            // pycocotools fills q[ri] = pr[pi] until pi runs off the end (IndexError), then stops.
            if (pi >= nd) break;
            precision[(t * R + r) * stride + off] = pr[pi]!;
            scores[(t * R + r) * stride + off] = c.score[order[pi]!]!;
          }
        }
      }
    }
  }
  return { precision, recall, scores, counts: [T, R, K, A, M] };
}

/** `np.searchsorted(a[:n], v, side='left')` for non-decreasing `a`. */
function searchLeft(a: Float64Array, n: number, v: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
