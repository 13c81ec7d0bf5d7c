import * as tf from '@tensorflow/tfjs';

/**
 * Weighted sum of gradients kept in JavaScript memory, one Float32Array per variable, for gradient
 * accumulation and data-parallel replicas. Why not tensors: on tfjs-wasm a running sum would sit in the
 * 4 GiB wasm heap during the next micro-batch's backward pass, which at 512x512 on the thesis model is
 * already close to the cap (a tensor sum aborted the wasm module there).
 */
export class GradientSum {
  private readonly sums: Float32Array[];

  /** `variables`: the order of every flat gradient added with {@link addFlat}. */
  constructor(private readonly variables: readonly tf.Variable[]) {
    this.sums = variables.map((v) => new Float32Array(v.size));
  }

  /** Adds `weight` x each gradient of `grads` (keyed by variable name); does not dispose them. */
  add(grads: tf.NamedTensorMap, weight: number): void {
    this.variables.forEach((v, i) => {
      const g = grads[v.name];
      if (!g) throw new Error(`GradientSum: no gradient for ${v.name}`);
      const src = g.dataSync() as Float32Array;
      const dst = this.sums[i]!;
      for (let k = 0; k < dst.length; k++) dst[k]! += weight * src[k]!;
    });
  }

  /** Adds `weight` x a flat gradient laid out as the variables, in order (a replica's shared slot). */
  addFlat(flat: Float32Array, weight: number): void {
    let o = 0;
    for (const dst of this.sums) {
      for (let k = 0; k < dst.length; k++) dst[k]! += weight * flat[o + k]!;
      o += dst.length;
    }
  }

  /** The sum divided by `denom`, as new tensors keyed by variable name (the caller disposes them). */
  toTensors(denom: number): tf.NamedTensorMap {
    const out: tf.NamedTensorMap = {};
    this.variables.forEach((v, i) => {
      const s = this.sums[i]!;
      for (let k = 0; k < s.length; k++) s[k]! /= denom;
      out[v.name] = tf.tensor(s, v.shape, 'float32');
    });
    return out;
  }
}
