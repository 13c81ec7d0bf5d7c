import * as tf from '@tensorflow/tfjs';

/**
 * Weighted sum of gradients kept in JavaScript memory, one Float32Array per variable, for gradient
 * accumulation and data-parallel replicas. Why not tensors: on tfjs-wasm a running sum would sit in the
 * 4 GiB wasm heap during the next micro-batch's backward pass, which at 512x512 on the thesis model is
 * already close to the cap (a tensor sum aborted the wasm module there).
 */
export class GradientSum {
  private readonly sums: Float32Array[];
  /** Nothing added yet: the first add writes instead of accumulating (one pass less over ~37 M floats). */
  private empty = true;

  /** `variables`: the order of every flat gradient added with {@link addFlat}. */
  constructor(private readonly variables: readonly tf.Variable[]) {
    this.sums = variables.map((v) => new Float32Array(v.size));
  }

  /** Adds `weight` x each gradient of `grads` (keyed by variable name); does not dispose them. */
  add(grads: tf.NamedTensorMap, weight: number): void {
    this.variables.forEach((v, i) => {
      const g = grads[v.name];
      if (!g) throw new Error(`GradientSum: no gradient for ${v.name}`);
      accumulate(this.sums[i]!, g.dataSync() as Float32Array, 0, weight, this.empty);
    });
    this.empty = false;
  }

  /** Adds `weight` x a flat gradient laid out as the variables, in order (a replica's shared slot). */
  addFlat(flat: Float32Array, weight: number): void {
    let o = 0;
    for (const dst of this.sums) {
      accumulate(dst, flat, o, weight, this.empty);
      o += dst.length;
    }
    this.empty = false;
  }

  /**
   * The sum divided by `denom`, as new tensors keyed by variable name (the caller disposes them). A caller
   * that knows the denominator before adding passes weights already divided by it and `denom` 1, which
   * skips a pass.
   */
  toTensors(denom: number): tf.NamedTensorMap {
    const out: tf.NamedTensorMap = {};
    const inv = 1 / denom;
    this.variables.forEach((v, i) => {
      const s = this.sums[i]!;
      if (denom !== 1) for (let k = 0; k < s.length; k++) s[k]! *= inv;
      out[v.name] = tf.tensor(s, v.shape, 'float32');
    });
    return out;
  }
}

/** `dst += weight * src[offset ..]`, or `dst = weight * src[offset ..]` when `overwrite`. */
function accumulate(
  dst: Float32Array,
  src: Float32Array,
  offset: number,
  weight: number,
  overwrite: boolean,
) {
  const n = dst.length;
  if (overwrite) for (let k = 0; k < n; k++) dst[k] = weight * src[offset + k]!;
  else for (let k = 0; k < n; k++) dst[k]! += weight * src[offset + k]!;
}
