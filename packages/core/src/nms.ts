import type { NumericArray } from './types.js';
import { assertFinite, boxCount, InvalidInputError } from './validate.js';

/**
 * Indices `0..n-1` ordered by descending score. Stable: equal scores keep
 * ascending index order (torchvision's sort leaves that order unspecified), so
 * results are reproducible across runs and between Node and the browser.
 */
export function argsortDescending(scores: NumericArray, indices?: ArrayLike<number>): Int32Array {
  const order = indices ? Int32Array.from(indices) : Int32Array.from({ length: scores.length }, (_, i) => i);
  // Typed-array sort with a comparator is not guaranteed stable, so ties break on the index explicitly.
  return order.sort((i, j) => scores[j]! - scores[i]! || i - j);
}

/**
 * Greedy non-maximum suppression (torchvision `nms`): visits boxes by
 * descending score and drops every later box whose IoU with a kept one is
 * strictly greater than `iouThreshold`. Returns kept indices, highest score first.
 */
export function nms(boxes: NumericArray, scores: NumericArray, iouThreshold: number): Int32Array {
  const n = boxCount(boxes);
  checkScores(scores, n);
  assertFinite(boxes, 'nms boxes', 4);
  return suppress(boxes, argsortDescending(scores), iouThreshold, undefined, Number.POSITIVE_INFINITY);
}

export interface BatchedNmsOptions {
  iouThreshold: number;
  /** Boxes scoring below this are dropped before NMS. Default: keep all. */
  scoreThreshold?: number;
  /** At most this many results, highest scores first. Default: all. */
  maxDetections?: number;
}

/**
 * Class-aware NMS (torchvision `batched_nms`): boxes only suppress boxes of the
 * same class. Returns kept indices sorted by descending score.
 */
export function batchedNms(
  boxes: NumericArray,
  scores: NumericArray,
  classes: NumericArray,
  options: BatchedNmsOptions,
): Int32Array {
  const n = boxCount(boxes);
  checkScores(scores, n);
  if (classes.length !== n) throw new InvalidInputError(`batchedNms: ${classes.length} class ids for ${n} boxes`);
  assertFinite(boxes, 'nms boxes', 4);
  const threshold = options.scoreThreshold ?? Number.NEGATIVE_INFINITY;
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (scores[i]! >= threshold) candidates.push(i);
  const order = argsortDescending(scores, candidates);
  return suppress(boxes, order, options.iouThreshold, classes, options.maxDetections ?? Number.POSITIVE_INFINITY);
}

/**
 * Indices of the `k` highest scores at or above `threshold` within each level
 * (levels are consecutive runs of `levelCounts` entries), as RetinaNet's
 * post-processing keeps before decoding. Each level's picks are in descending
 * score order; levels stay in order.
 */
export function topKPerLevel(
  scores: NumericArray,
  levelCounts: ArrayLike<number>,
  k: number,
  threshold = Number.NEGATIVE_INFINITY,
): Int32Array {
  const picked: number[] = [];
  let start = 0;
  for (let l = 0; l < levelCounts.length; l++) {
    const end = start + levelCounts[l]!;
    const candidates: number[] = [];
    for (let i = start; i < end; i++) if (scores[i]! > threshold) candidates.push(i);
    const order = argsortDescending(scores, candidates);
    for (let j = 0; j < Math.min(k, order.length); j++) picked.push(order[j]!);
    start = end;
  }
  if (start !== scores.length) {
    throw new InvalidInputError(`topKPerLevel: level counts sum to ${start}, scores has ${scores.length}`);
  }
  return Int32Array.from(picked);
}

function suppress(
  boxes: NumericArray,
  order: Int32Array,
  iouThreshold: number,
  classes: NumericArray | undefined,
  maxKeep: number,
): Int32Array {
  const m = order.length;
  // Copy the candidates into a compact buffer so the inner loop walks memory in order.
  const x1 = new Float64Array(m);
  const y1 = new Float64Array(m);
  const x2 = new Float64Array(m);
  const y2 = new Float64Array(m);
  const area = new Float64Array(m);
  for (let k = 0; k < m; k++) {
    const b = order[k]! * 4;
    x1[k] = boxes[b]!;
    y1[k] = boxes[b + 1]!;
    x2[k] = boxes[b + 2]!;
    y2[k] = boxes[b + 3]!;
    area[k] = Math.max(0, x2[k]! - x1[k]!) * Math.max(0, y2[k]! - y1[k]!);
  }
  const removed = new Uint8Array(m);
  const keep: number[] = [];
  for (let i = 0; i < m && keep.length < maxKeep; i++) {
    if (removed[i]) continue;
    keep.push(order[i]!);
    const cls = classes ? classes[order[i]!] : 0;
    for (let j = i + 1; j < m; j++) {
      if (removed[j]) continue;
      if (classes && classes[order[j]!] !== cls) continue;
      const w = Math.min(x2[i]!, x2[j]!) - Math.max(x1[i]!, x1[j]!);
      if (w <= 0) continue;
      const h = Math.min(y2[i]!, y2[j]!) - Math.max(y1[i]!, y1[j]!);
      if (h <= 0) continue;
      const inter = w * h;
      const union = area[i]! + area[j]! - inter;
      if (union > 0 && inter / union > iouThreshold) removed[j] = 1;
    }
  }
  return Int32Array.from(keep);
}

function checkScores(scores: NumericArray, n: number): void {
  if (scores.length !== n) throw new InvalidInputError(`nms: ${scores.length} scores for ${n} boxes`);
  assertFinite(scores, 'nms scores');
}
