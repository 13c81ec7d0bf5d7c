import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';

let ready: Promise<void> | undefined;
/** tfjs on the plain-JS cpu backend: slow but the reference arithmetic. */
export function initTf(): Promise<void> {
  ready ??= (async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  })();
  return ready;
}

/** Deterministic uniform values in [lo, hi). */
export function randomValues(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((hi - lo) * s) / 2 ** 32;
  }
  return out;
}

/** NHWC `[n, h, w, c]` -> NCHW. */
export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let k = 0; k < c; k++) out[((b * c + k) * h + y) * w + xx] = x[((b * h + y) * w + xx) * c + k]!;
  return out;
}

/**
 * Gives every weight of `model` random values that keep activations O(1) through deep
 * stacks: kernels uniform with variance 1 / fan_in, biases +-0.1, BatchNorm gamma 0.5..1.5,
 * beta and mean +-0.2, variance 0.5..2 (so folding has real work to do).
 */
export function randomizeWeights(model: tf.LayersModel, seed: number): void {
  let k = seed;
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (ws.length === 0) continue;
    const fresh = ws.map((w, i) => {
      const name = layer.weights[i]!.originalName;
      const range = (): [number, number] => {
        if (name.endsWith('variance')) return [0.5, 2];
        if (name.endsWith('gamma')) return [0.5, 1.5];
        if (w.rank >= 2) {
          const fanIn = w.shape.slice(0, -1).reduce((a, b) => a * b, 1);
          const r = Math.sqrt(3 / fanIn);
          return [-r, r];
        }
        return name.endsWith('bias') ? [-0.1, 0.1] : [-0.2, 0.2];
      };
      const [lo, hi] = range();
      return tf.tensor(randomValues(w.size, k++, lo, hi), w.shape);
    });
    layer.setWeights(fresh);
    tf.dispose(fresh);
  }
}

export interface ParityResult {
  name: string;
  shape: readonly number[];
  maxAbsDiff: number;
  range: number;
  /** maxAbsDiff / range */
  relative: number;
}

/**
 * Runs `model` in tfjs (NHWC input) and the ONNX bytes in onnxruntime-node (NCHW input)
 * on the same random batch; returns per-output max |diff| relative to the tfjs output's range.
 */
export async function compareWithOrt(
  model: tf.LayersModel,
  onnx: Uint8Array,
  size: { n: number; h: number; w: number },
  seed: number,
  names?: { input?: string; outputs?: readonly string[] },
): Promise<ParityResult[]> {
  const { n, h, w } = size;
  const c = model.inputs[0]!.shape[3]!;
  const x = randomValues(n * h * w * c, seed);
  const tfOut = tf.tidy(() => {
    const y = model.predict(tf.tensor(x, [n, h, w, c]));
    return Array.isArray(y) ? y : [y];
  });
  const tfData = await Promise.all(tfOut.map((t) => t.data() as Promise<Float32Array>));
  const tfShapes = tfOut.map((t) => t.shape);
  tf.dispose(tfOut);

  const session = await ort.InferenceSession.create(onnx, {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: 1,
  });
  const inputName = names?.input ?? session.inputNames[0]!;
  const res = await session.run({
    [inputName]: new ort.Tensor('float32', nhwcToNchw(x, n, h, w, c), [n, c, h, w]),
  });
  const outNames = names?.outputs ?? session.outputNames;
  const results = outNames.map((name, i) => {
    const o = res[name]!;
    const a = tfData[i]!;
    const b = o.data as Float32Array;
    if (a.length !== b.length || o.dims.join() !== tfShapes[i]!.join()) {
      throw new Error(`output ${name}: tfjs shape [${tfShapes[i]}] vs onnx [${o.dims}]`);
    }
    let diff = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < a.length; j++) {
      diff = Math.max(diff, Math.abs(a[j]! - b[j]!));
      lo = Math.min(lo, a[j]!);
      hi = Math.max(hi, a[j]!);
    }
    const range = hi - lo;
    return { name, shape: o.dims, maxAbsDiff: diff, range, relative: diff / (range || 1) };
  });
  await session.release();
  return results;
}

/** The onnx project's own checker (tooling/export_check_onnx.py, run by Debian's python3-onnx). */
export const checker = join(import.meta.dirname, '..', '..', '..', 'tooling', 'export_check_onnx.py');
/** Whether the checker can run; python3-onnx is not a CI requirement, so its tests skip without it. */
export const hasOnnxPython = (() => {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import onnx'], { stdio: 'ignore' });
    return existsSync(checker);
  } catch {
    return false;
  }
})();
