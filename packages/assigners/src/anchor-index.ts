import { boxArea, type NumericArray } from '@bmc/core';

/**
 * Anchors of each level sorted by centre x, so a query touches only the
 * anchors whose centres lie in an x-range instead of all N. Built once per
 * anchors array (the same array every training step) and cached on it, so
 * anchors are treated as immutable: pass a new array after changing one.
 */
export interface AnchorIndex {
  /** `[L + 1]` level boundaries the index was built for. */
  levelStarts: Int32Array;
  /** `[N]` anchor indices, each level's run sorted by centre x, then centre y, then index. */
  order: Int32Array;
  /** `[N]` centre x in `order`'s order. */
  sortedCx: Float64Array;
  /** `[N]` centre y in `order`'s order (ascending within a run of equal centre x). */
  sortedCy: Float64Array;
  /** `[N]` end position of the equal-centre-x run that position k belongs to (a grid column). */
  runEnd: Int32Array;
  /** `[N]` anchor areas (`@bmc/core`'s `boxArea`, float32 as torchvision). */
  area: Float32Array;
  /** `[N]` centre x and y by anchor index. */
  cx: Float64Array;
  cy: Float64Array;
  /** `[L]` largest half-width and half-height of an anchor on each level. */
  maxHalfWidth: Float64Array;
  maxHalfHeight: Float64Array;
}

const cache = new WeakMap<object, AnchorIndex>();

export function anchorIndex(anchors: NumericArray, levelStarts: Int32Array): AnchorIndex {
  const hit = typeof anchors === 'object' ? cache.get(anchors) : undefined;
  if (hit && sameStarts(hit.levelStarts, levelStarts)) return hit;
  const n = levelStarts[levelStarts.length - 1]!;
  const cx = new Float64Array(n);
  const cy = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    cx[i] = (anchors[4 * i]! + anchors[4 * i + 2]!) / 2;
    cy[i] = (anchors[4 * i + 1]! + anchors[4 * i + 3]!) / 2;
  }
  const levels = levelStarts.length - 1;
  const order = new Int32Array(n);
  const sortedCx = new Float64Array(n);
  const sortedCy = new Float64Array(n);
  const runEnd = new Int32Array(n);
  const maxHalfWidth = new Float64Array(levels);
  const maxHalfHeight = new Float64Array(levels);
  for (let l = 0; l < levels; l++) {
    const s = levelStarts[l]!;
    const e = levelStarts[l + 1]!;
    const idx = new Int32Array(e - s);
    for (let i = s; i < e; i++) {
      idx[i - s] = i;
      maxHalfWidth[l] = Math.max(maxHalfWidth[l]!, (anchors[4 * i + 2]! - anchors[4 * i]!) / 2);
      maxHalfHeight[l] = Math.max(maxHalfHeight[l]!, (anchors[4 * i + 3]! - anchors[4 * i + 1]!) / 2);
    }
    idx.sort((p, q) => cx[p]! - cx[q]! || cy[p]! - cy[q]! || p - q);
    order.set(idx, s);
    for (let k = s; k < e; k++) {
      sortedCx[k] = cx[order[k]!]!;
      sortedCy[k] = cy[order[k]!]!;
    }
    for (let k = e - 1; k >= s; k--)
      runEnd[k] = k + 1 < e && sortedCx[k + 1] === sortedCx[k] ? runEnd[k + 1]! : k + 1;
  }
  const index = {
    levelStarts: levelStarts.slice(),
    area: boxArea(anchors),
    order,
    sortedCx,
    sortedCy,
    runEnd,
    cx,
    cy,
    maxHalfWidth,
    maxHalfHeight,
  };
  if (typeof anchors === 'object') cache.set(anchors, index);
  return index;
}

function sameStarts(a: Int32Array, b: Int32Array): boolean {
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

/** First position `k` in `[lo, hi)` with `sortedCx[k] > x` (or `>= x` when `inclusive`). */
export function lowerBound(
  sorted: Float64Array,
  lo: number,
  hi: number,
  x: number,
  inclusive: boolean,
): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (inclusive ? v < x : v <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Positions in `order` of level `l` whose centre x lies strictly inside
 * `(xMin, xMax)`: the half-open position range `[from, to)`.
 */
export function centreRange(index: AnchorIndex, l: number, xMin: number, xMax: number): [number, number] {
  const s = index.levelStarts[l]!;
  const e = index.levelStarts[l + 1]!;
  return [lowerBound(index.sortedCx, s, e, xMin, false), lowerBound(index.sortedCx, s, e, xMax, true)];
}

/**
 * Position ranges `[from, to)` (flattened pairs) in `order` of the level-`l`
 * anchors whose centre lies strictly inside `(xMin, xMax) x (yMin, yMax)`:
 * the x-range is cut by binary search, then each grid column (run of equal
 * centre x, sorted by y) by two more. Cost ~ columns x log(column) + hits.
 */
export function centreWindow(
  index: AnchorIndex,
  l: number,
  xMin: number,
  xMax: number,
  yMin: number,
  yMax: number,
): number[] {
  const [from, to] = centreRange(index, l, xMin, xMax);
  const out: number[] = [];
  const { runEnd, sortedCy } = index;
  for (let k = from; k < to; ) {
    const end = Math.min(runEnd[k]!, to);
    const a = lowerBound(sortedCy, k, end, yMin, false);
    const b = lowerBound(sortedCy, a, end, yMax, true);
    if (b > a) out.push(a, b);
    k = end;
  }
  return out;
}

/**
 * The `k` anchors of level `l` nearest `(x, y)` by centre distance, ascending
 * by (squared distance, anchor index): the same answer as a full scan that
 * keeps the lower index on ties. Walks outwards in x from `x` and stops once
 * the x-gap alone exceeds the k-th distance.
 */
export function nearestK(index: AnchorIndex, l: number, x: number, y: number, k: number): Int32Array {
  const s = index.levelStarts[l]!;
  const e = index.levelStarts[l + 1]!;
  const cap = Math.max(0, Math.min(k, e - s));
  if (cap === 0) return new Int32Array(0);
  const idx = new Int32Array(cap);
  const val = new Float64Array(cap);
  let size = 0;
  const { order, sortedCx, cy } = index;
  let right = lowerBound(sortedCx, s, e, x, true);
  let left = right - 1;
  while (left >= s || right < e) {
    const dl = left >= s ? x - sortedCx[left]! : Number.POSITIVE_INFINITY;
    const dr = right < e ? sortedCx[right]! - x : Number.POSITIVE_INFINITY;
    const useLeft = dl <= dr;
    const gap = useLeft ? dl : dr;
    if (size === cap && gap * gap > val[cap - 1]!) break;
    const i = order[useLeft ? left-- : right++]!;
    const d = gap * gap + (cy[i]! - y) ** 2;
    if (size === cap) {
      if (!(d < val[cap - 1]! || (d === val[cap - 1]! && i < idx[cap - 1]!))) continue;
      size--;
    }
    let p = size;
    while (p > 0 && (val[p - 1]! > d || (val[p - 1] === d && idx[p - 1]! > i))) {
      val[p] = val[p - 1]!;
      idx[p] = idx[p - 1]!;
      p--;
    }
    val[p] = d;
    idx[p] = i;
    size++;
  }
  return idx.subarray(0, size);
}
