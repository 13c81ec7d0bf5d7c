/**
 * Layout bookkeeping. tfjs activations are NHWC; the ONNX graph keeps every
 * rank-4 value NCHW (so convolutions need no transposes) and every other rank
 * as tfjs has it. Weights are transposed at export; activations are transposed
 * only where a layer's meaning depends on memory order (Reshape, Flatten, Dense
 * on 4-D input, Permute), so a flattened head output keeps tfjs's (y, x, anchor)
 * order.
 */
import type { OnnxGraphBuilder } from './graph-builder.js';

/** A tfjs tensor's ONNX counterpart: rank-4 values are stored NCHW, others as in tfjs. */
export interface Value {
  name: string;
  /** The tfjs (NHWC) shape; `null` for unknown sizes. */
  shape: ReadonlyArray<number | null>;
}

export const NHWC_TO_NCHW = [0, 3, 1, 2] as const;
export const NCHW_TO_NHWC = [0, 2, 3, 1] as const;

/** Maps a tfjs axis (negative allowed) to the ONNX axis of the stored value. */
export function onnxAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new RangeError(`axis ${axis} out of range for rank ${rank}`);
  return rank === 4 ? [0, 2, 3, 1][a]! : a;
}

/** The value's data in tfjs's memory order (NHWC for rank 4). */
export function toTfLayout(g: OnnxGraphBuilder, v: Value, base: string): string {
  if (v.shape.length !== 4) return v.name;
  return g.node('Transpose', [v.name], `${base}/to_nhwc`, { perm: { ints: NCHW_TO_NHWC } })[0]!;
}

/** Converts a tensor in tfjs memory order back to the stored layout. */
export function fromTfLayout(g: OnnxGraphBuilder, name: string, rank: number, base: string): string {
  if (rank !== 4) return name;
  return g.node('Transpose', [name], `${base}/to_nchw`, { perm: { ints: NHWC_TO_NCHW } })[0]!;
}

/** tfjs kernel `[kh, kw, cin, cout]` -> ONNX Conv weight `[cout, cin, kh, kw]`. */
export function convKernelToOihw(kernel: Float32Array, shape: readonly number[]): Float32Array {
  const [kh, kw, cin, cout] = shape as [number, number, number, number];
  const out = new Float32Array(kernel.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        const src = ((y * kw + x) * cin + i) * cout;
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = kernel[src + o]!;
      }
    }
  }
  return out;
}

/**
 * tfjs depthwise kernel `[kh, kw, cin, mult]` -> ONNX grouped Conv weight
 * `[cin * mult, 1, kh, kw]` (output channel `c * mult + m`, as tfjs orders them).
 */
export function depthwiseKernelToOihw(kernel: Float32Array, shape: readonly number[]): Float32Array {
  const [kh, kw, cin, mult] = shape as [number, number, number, number];
  const out = new Float32Array(kernel.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let c = 0; c < cin; c++) {
        for (let m = 0; m < mult; m++) {
          out[((c * mult + m) * kh + y) * kw + x] = kernel[((y * kw + x) * cin + c) * mult + m]!;
        }
      }
    }
  }
  return out;
}
