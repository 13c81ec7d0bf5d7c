import type { BoxesXYXY, NumericArray } from './types.js';
import { boxCount } from './validate.js';

/** Areas `[N]` of `[N, 4]` xyxy boxes; inverted boxes count as area 0, as degenerate boxes do. */
export function boxArea(boxes: NumericArray): Float32Array {
  const n = boxCount(boxes);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const w = boxes[4 * i + 2]! - boxes[4 * i]!;
    const h = boxes[4 * i + 3]! - boxes[4 * i + 1]!;
    out[i] = w > 0 && h > 0 ? w * h : 0;
  }
  return out;
}

/** Clips `[N, 4]` xyxy boxes to `[0, width] x [0, height]` (a new array). */
export function clipBoxes(boxes: NumericArray, width: number, height: number): BoxesXYXY {
  const n = boxCount(boxes);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n * 4; i += 4) {
    out[i] = Math.min(Math.max(boxes[i]!, 0), width);
    out[i + 1] = Math.min(Math.max(boxes[i + 1]!, 0), height);
    out[i + 2] = Math.min(Math.max(boxes[i + 2]!, 0), width);
    out[i + 3] = Math.min(Math.max(boxes[i + 3]!, 0), height);
  }
  return out;
}

/** Indices of boxes whose width and height are both at least `minSize` (torchvision `remove_small_boxes`). */
export function keepLargeBoxes(boxes: NumericArray, minSize: number): Int32Array {
  const n = boxCount(boxes);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    if (boxes[4 * i + 2]! - boxes[4 * i]! >= minSize && boxes[4 * i + 3]! - boxes[4 * i + 1]! >= minSize) {
      keep.push(i);
    }
  }
  return Int32Array.from(keep);
}

/** Rows `indices` of a `[N, 4]` array (or of any `[N, stride]` array). */
export function gatherRows(values: NumericArray, indices: ArrayLike<number>, stride = 4): Float32Array {
  const out = new Float32Array(indices.length * stride);
  for (let k = 0; k < indices.length; k++) {
    const src = indices[k]! * stride;
    for (let j = 0; j < stride; j++) out[k * stride + j] = values[src + j]!;
  }
  return out;
}
