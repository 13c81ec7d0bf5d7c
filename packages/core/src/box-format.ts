import type { BoxesCXCYWH, BoxesXYWH, BoxesXYXY, NumericArray } from './types.js';
import { boxCount } from './validate.js';

/**
 * The one place where box layouts are converted. COCO files store `[x, y, w, h]`;
 * everything inside bmc works on `[x1, y1, x2, y2]`.
 */
export type BoxFormat = 'xyxy' | 'xywh' | 'cxcywh';

export function xywhToXyxy(boxes: NumericArray): BoxesXYXY {
  const n = boxCount(boxes);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n * 4; i += 4) {
    const x = boxes[i]!;
    const y = boxes[i + 1]!;
    out[i] = x;
    out[i + 1] = y;
    out[i + 2] = x + boxes[i + 2]!;
    out[i + 3] = y + boxes[i + 3]!;
  }
  return out;
}

export function xyxyToXywh(boxes: NumericArray): BoxesXYWH {
  const n = boxCount(boxes);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n * 4; i += 4) {
    out[i] = boxes[i]!;
    out[i + 1] = boxes[i + 1]!;
    out[i + 2] = boxes[i + 2]! - boxes[i]!;
    out[i + 3] = boxes[i + 3]! - boxes[i + 1]!;
  }
  return out;
}

export function cxcywhToXyxy(boxes: NumericArray): BoxesXYXY {
  const n = boxCount(boxes);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n * 4; i += 4) {
    const hw = boxes[i + 2]! / 2;
    const hh = boxes[i + 3]! / 2;
    out[i] = boxes[i]! - hw;
    out[i + 1] = boxes[i + 1]! - hh;
    out[i + 2] = boxes[i]! + hw;
    out[i + 3] = boxes[i + 1]! + hh;
  }
  return out;
}

export function xyxyToCxcywh(boxes: NumericArray): BoxesCXCYWH {
  const n = boxCount(boxes);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n * 4; i += 4) {
    const w = boxes[i + 2]! - boxes[i]!;
    const h = boxes[i + 3]! - boxes[i + 1]!;
    out[i] = boxes[i]! + w / 2;
    out[i + 1] = boxes[i + 1]! + h / 2;
    out[i + 2] = w;
    out[i + 3] = h;
  }
  return out;
}

/** Converts between any two layouts (a copy, even when `from === to`). */
export function convertBoxes(boxes: NumericArray, from: BoxFormat, to: BoxFormat): Float32Array {
  if (from === to) {
    boxCount(boxes);
    return Float32Array.from(boxes);
  }
  const xyxy =
    from === 'xyxy' ? Float32Array.from(boxes) : from === 'xywh' ? xywhToXyxy(boxes) : cxcywhToXyxy(boxes);
  if (to === 'xyxy') return xyxy;
  return to === 'xywh' ? xyxyToXywh(xyxy) : xyxyToCxcywh(xyxy);
}
