import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { mulberry32 } from '@bmc/test-utils';

/** Deterministic uniform [-1, 1) values (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

export function randomArray(shape: readonly number[], rand: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rand();
  return out;
}

export async function useWasm(): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
}

/** Runs `fn` on the cpu backend and returns its result's values (tensors disposed). */
export function onBackend(name: 'cpu' | 'wasm', fn: () => tf.Tensor): Float32Array {
  const prev = tf.getBackend();
  tf.setBackend(name);
  try {
    const t = tf.tidy(fn);
    const data = t.dataSync() as Float32Array;
    t.dispose();
    return data;
  } finally {
    tf.setBackend(prev);
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export { tf };
