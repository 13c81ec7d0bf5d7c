import { boxArea } from './box-ops.js';
import type { Matrix, NumericArray } from './types.js';
import { boxCount } from './validate.js';

/*
 * IoU conventions (all functions here): boxes are continuous xyxy (no +1 pixel
 * term, as torchvision). When the union is 0 (two degenerate boxes) IoU is 0
 * rather than torchvision's NaN, so a zero-area ground truth can never be
 * matched by accident; GIoU's enclosing-area term is likewise 0 when the
 * enclosing box has no area.
 */

/** Pairwise IoU `[N, M]` between `[N, 4]` and `[M, 4]` xyxy boxes (torchvision `box_iou`). */
export function boxIou(a: NumericArray, b: NumericArray): Matrix {
  const { n, m, areaA, areaB, data } = pairwise(a, b);
  for (let i = 0; i < n; i++) {
    const ax1 = a[4 * i]!;
    const ay1 = a[4 * i + 1]!;
    const ax2 = a[4 * i + 2]!;
    const ay2 = a[4 * i + 3]!;
    const aa = areaA[i]!;
    const row = i * m;
    for (let j = 0; j < m; j++) {
      const w = Math.min(ax2, b[4 * j + 2]!) - Math.max(ax1, b[4 * j]!);
      if (w <= 0) continue;
      const h = Math.min(ay2, b[4 * j + 3]!) - Math.max(ay1, b[4 * j + 1]!);
      if (h <= 0) continue;
      const inter = w * h;
      const union = aa + areaB[j]! - inter;
      data[row + j] = union > 0 ? inter / union : 0;
    }
  }
  return { data, rows: n, cols: m };
}

/** Pairwise generalized IoU `[N, M]` (torchvision `generalized_box_iou`), in [-1, 1]. */
export function generalizedBoxIou(a: NumericArray, b: NumericArray): Matrix {
  const { n, m, areaA, areaB, data } = pairwise(a, b);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      data[i * m + j] = giouPair(a, i, b, j, areaA[i]!, areaB[j]!);
    }
  }
  return { data, rows: n, cols: m };
}

/** IoU of row i of `a` with row i of `b` (both `[N, 4]`): `[N]`. */
export function alignedIou(a: NumericArray, b: NumericArray): Float32Array {
  const n = alignedCount(a, b);
  const areaA = boxArea(a);
  const areaB = boxArea(b);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const w = Math.min(a[4 * i + 2]!, b[4 * i + 2]!) - Math.max(a[4 * i]!, b[4 * i]!);
    const h = Math.min(a[4 * i + 3]!, b[4 * i + 3]!) - Math.max(a[4 * i + 1]!, b[4 * i + 1]!);
    if (w <= 0 || h <= 0) continue;
    const inter = w * h;
    const union = areaA[i]! + areaB[i]! - inter;
    out[i] = union > 0 ? inter / union : 0;
  }
  return out;
}

/** GIoU of row i of `a` with row i of `b`: `[N]`. */
export function alignedGiou(a: NumericArray, b: NumericArray): Float32Array {
  const n = alignedCount(a, b);
  const areaA = boxArea(a);
  const areaB = boxArea(b);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = giouPair(a, i, b, i, areaA[i]!, areaB[i]!);
  return out;
}

function giouPair(a: NumericArray, i: number, b: NumericArray, j: number, aa: number, ab: number): number {
  const ax1 = a[4 * i]!;
  const ay1 = a[4 * i + 1]!;
  const ax2 = a[4 * i + 2]!;
  const ay2 = a[4 * i + 3]!;
  const bx1 = b[4 * j]!;
  const by1 = b[4 * j + 1]!;
  const bx2 = b[4 * j + 2]!;
  const by2 = b[4 * j + 3]!;
  const w = Math.max(0, Math.min(ax2, bx2) - Math.max(ax1, bx1));
  const h = Math.max(0, Math.min(ay2, by2) - Math.max(ay1, by1));
  const inter = w * h;
  const union = aa + ab - inter;
  const iou = union > 0 ? inter / union : 0;
  const encl = (Math.max(ax2, bx2) - Math.min(ax1, bx1)) * (Math.max(ay2, by2) - Math.min(ay1, by1));
  return encl > 0 ? iou - (encl - union) / encl : iou;
}

/** What the pairwise functions start from: box counts, areas and the zeroed `[N, M]` output. */
function pairwise(a: NumericArray, b: NumericArray) {
  const n = boxCount(a, 'boxes a');
  const m = boxCount(b, 'boxes b');
  return { n, m, areaA: boxArea(a), areaB: boxArea(b), data: new Float32Array(n * m) };
}

function alignedCount(a: NumericArray, b: NumericArray): number {
  const n = boxCount(a, 'boxes a');
  const m = boxCount(b, 'boxes b');
  if (n !== m) throw new RangeError(`aligned IoU needs equal box counts, got ${n} and ${m}`);
  return n;
}
