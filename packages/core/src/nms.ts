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
  if (classes.length !== n)
    throw new InvalidInputError(`batchedNms: ${classes.length} class ids for ${n} boxes`);
  assertFinite(boxes, 'nms boxes', 4);
  const threshold = options.scoreThreshold ?? Number.NEGATIVE_INFINITY;
  const candidates: number[] = [];
  for (let i = 0; i < n; i++) if (scores[i]! >= threshold) candidates.push(i);
  const order = argsortDescending(scores, candidates);
  return suppress(
    boxes,
    order,
    options.iouThreshold,
    classes,
    options.maxDetections ?? Number.POSITIVE_INFINITY,
  );
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

/**
 * Greedy NMS in its "keep list" form: a candidate (in score order) survives
 * unless a box kept before it overlaps it by more than the threshold. That is
 * the same decision as the textbook sweep, but the kept boxes live in a
 * uniform grid, so each candidate is compared only with kept boxes in the cells
 * it touches (two boxes with positive intersection always share a cell). Dense
 * outputs where most boxes survive then cost about O(N) instead of O(N * kept).
 */
function suppressOneClass(
  boxes: NumericArray,
  order: ArrayLike<number>,
  iouThreshold: number,
  maxKeep: number,
): number[] {
  const m = order.length;
  const keep: number[] = [];
  if (m === 0 || maxKeep <= 0) return keep;
  const x1 = new Float64Array(m);
  const y1 = new Float64Array(m);
  const x2 = new Float64Array(m);
  const y2 = new Float64Array(m);
  const area = new Float64Array(m);
  let minX = Number.POSITIVE_INFINITY;
  let minY = Number.POSITIVE_INFINITY;
  let maxX = Number.NEGATIVE_INFINITY;
  let maxY = Number.NEGATIVE_INFINITY;
  let sizeSum = 0;
  for (let k = 0; k < m; k++) {
    const b = order[k]! * 4;
    x1[k] = boxes[b]!;
    y1[k] = boxes[b + 1]!;
    x2[k] = boxes[b + 2]!;
    y2[k] = boxes[b + 3]!;
    const w = x2[k]! - x1[k]!;
    const h = y2[k]! - y1[k]!;
    area[k] = w > 0 && h > 0 ? w * h : 0;
    minX = Math.min(minX, x1[k]!);
    minY = Math.min(minY, y1[k]!);
    maxX = Math.max(maxX, x2[k]!);
    maxY = Math.max(maxY, y2[k]!);
    sizeSum += Math.max(w, h, 0);
  }
  // Cells about the size of a typical box, at most 256 per side.
  const cell = Math.max(sizeSum / m, (maxX - minX) / 256, (maxY - minY) / 256, 1e-6);
  const gw = Math.floor((maxX - minX) / cell) + 1;
  const gh = Math.floor((maxY - minY) / cell) + 1;
  const grid: Array<number[] | undefined> = new Array(gw * gh);
  for (let k = 0; k < m; k++) {
    const ak = area[k]!;
    // A zero-area box has IoU 0 with everything: it is always kept and never suppresses.
    if (ak === 0) {
      keep.push(order[k]!);
      if (keep.length >= maxKeep) break;
      continue;
    }
    const cx0 = Math.floor((x1[k]! - minX) / cell);
    const cx1 = Math.min(gw - 1, Math.floor((x2[k]! - minX) / cell));
    const cy0 = Math.floor((y1[k]! - minY) / cell);
    const cy1 = Math.min(gh - 1, Math.floor((y2[k]! - minY) / cell));
    let suppressed = false;
    scan: for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const bucket = grid[cy * gw + cx];
        if (!bucket) continue;
        for (let t = 0; t < bucket.length; t++) {
          const p = bucket[t]!;
          const w = Math.min(x2[k]!, x2[p]!) - Math.max(x1[k]!, x1[p]!);
          if (w <= 0) continue;
          const h = Math.min(y2[k]!, y2[p]!) - Math.max(y1[k]!, y1[p]!);
          if (h <= 0) continue;
          const inter = w * h;
          if (inter / (ak + area[p]! - inter) > iouThreshold) {
            suppressed = true;
            break scan;
          }
        }
      }
    }
    if (suppressed) continue;
    keep.push(order[k]!);
    if (keep.length >= maxKeep) break;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * gw + cx;
        const bucket = grid[c];
        if (bucket) bucket.push(k);
        else grid[c] = [k];
      }
    }
  }
  return keep;
}

function suppress(
  boxes: NumericArray,
  order: Int32Array,
  iouThreshold: number,
  classes: NumericArray | undefined,
  maxKeep: number,
): Int32Array {
  if (!classes) return Int32Array.from(suppressOneClass(boxes, order, iouThreshold, maxKeep));
  // Classes never suppress each other: run each class on its own, then merge by score rank.
  const byClass = new Map<number, number[]>();
  const rank = new Int32Array(boxes.length / 4);
  order.forEach((idx, r) => {
    rank[idx] = r;
    const c = classes[idx]!;
    const list = byClass.get(c);
    if (list) list.push(idx);
    else byClass.set(c, [idx]);
  });
  const kept: number[] = [];
  for (const list of byClass.values()) {
    for (const idx of suppressOneClass(boxes, list, iouThreshold, maxKeep)) kept.push(idx);
  }
  kept.sort((a, b) => rank[a]! - rank[b]!);
  return Int32Array.from(kept.length > maxKeep ? kept.slice(0, maxKeep) : kept);
}

function checkScores(scores: NumericArray, n: number): void {
  if (scores.length !== n) throw new InvalidInputError(`nms: ${scores.length} scores for ${n} boxes`);
  assertFinite(scores, 'nms scores');
}
