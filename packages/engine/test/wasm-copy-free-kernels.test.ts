/**
 * The copy-free wasm kernels against wasm's own (registered before them) and the cpu backend:
 * same values bit for bit, memory shared where it should be, released when the last user goes,
 * gradients of a conv net unchanged, no tensors left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerCopyFreeWasmKernels } from '../src/index.js';
import { randomArray, rng, tf, useWasm } from './helpers.js';

/** Runs `f` with wasm's own kernels, then with ours, and returns both results' values. */
function both<T>(f: () => T, read: (t: T) => number[][]): [number[][], number[][]] {
  const own = tf.tidy(() => read(f()));
  const restore = registerCopyFreeWasmKernels();
  try {
    return [own, tf.tidy(() => read(f()))];
  } finally {
    restore();
  }
}

describe('copy-free wasm kernels', () => {
  beforeAll(useWasm);
  afterAll(() => tf.setBackend('wasm'));

  it('Sum over leading axes: bit-identical to wasm (transpose + sum) and to the cpu backend', () => {
    const r = rng(11);
    const cases: [number[], number | number[], boolean][] = [
      [[2, 5, 7, 3], [0, 1, 2], false],
      [[3, 4, 6], 0, false],
      [[3, 4, 6], [0, 1], true],
      [[3, 4, 6], [-3, -2], false], // negative axes
      [[2, 5, 7, 3], [1, 2], false], // not leading: wasm's own kernel
      [[4, 5], null as unknown as number[], false], // all axes: wasm's own kernel
    ];
    for (const [shape, axis, keepDims] of cases) {
      const data = randomArray(shape, r);
      const read = (t: tf.Tensor) => [t.shape, Array.from(t.dataSync())];
      const [own, ours] = both(() => tf.sum(tf.tensor(data, shape), axis, keepDims), read);
      // (for an unsorted axis list wasm transposes to another order, and its sums differ in the last bits)
      expect(ours, `${shape} ${axis}`).toEqual(own);
      tf.setBackend('cpu');
      const cpu = tf.tidy(() => read(tf.sum(tf.tensor(data, shape), axis, keepDims)));
      tf.setBackend('wasm');
      expect(ours[0]).toEqual(cpu[0]);
      ours[1]!.forEach((v, i) => {
        expect(Math.abs(v - cpu[1]![i]!)).toBeLessThan(1e-5);
      });
    }
  });

  it('Identity and same-dtype Cast share the input memory, released with its last user', () => {
    const restore = registerCopyFreeWasmKernels();
    try {
      const buffers = () => tf.backend().numDataIds(); // wasm heap allocations, not tensor objects
      const x = tf.tensor([1, 2, 3, 4], [2, 2]);
      const start = buffers();
      const c = x.clone();
      const k = tf.cast(x, 'float32');
      expect(buffers()).toBe(start); // no new data
      expect(Array.from(c.dataSync())).toEqual([1, 2, 3, 4]);
      x.dispose();
      expect(Array.from(k.dataSync())).toEqual([1, 2, 3, 4]); // alive while k uses it
      const i = tf.cast(k, 'int32'); // a real cast still converts
      expect(i.dtype).toBe('int32');
      expect(Array.from(i.dataSync())).toEqual([1, 2, 3, 4]);
      tf.dispose([c, k]);
      expect(buffers()).toBe(start); // x's data was freed with its last user; i has its own
      i.dispose();
      expect(buffers()).toBe(start - 1);
    } finally {
      restore();
    }
  });

  it('gradients of a pointwise net with bias, ReLU and a residual sum are unchanged, with no tensors left', () => {
    const r = rng(5);
    const x = tf.tensor4d(randomArray([2, 9, 9, 4], r), [2, 9, 9, 4]);
    const w1 = tf.tensor2d(randomArray([4, 4], r), [4, 4]);
    const b1 = tf.tensor1d(randomArray([4], r));
    const w2 = tf.tensor2d(randomArray([4, 4], r), [4, 4]);
    // [N, H, W, C] x [C, C] as a matMul over rows; the bias gradient is a Sum over N, H, W.
    const pointwise = (t: tf.Tensor, w: tf.Tensor) =>
      tf.reshape(tf.matMul(tf.reshape(t, [-1, 4]), w as tf.Tensor2D), [2, 9, 9, 4]);
    const loss = (xx: tf.Tensor, a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
      const h = tf.relu(tf.add(pointwise(xx, a), b));
      const y = tf.add(pointwise(h, c), xx);
      return tf.sum(tf.mul(y, y));
    };
    const grads = () => tf.grads(loss)([x, w1, b1, w2]);
    tf.dispose(grads()); // warm-up
    const before = tf.memory().numTensors;
    const [own, ours] = both(grads, (gs) => gs.map((g) => Array.from(g.dataSync())));
    expect(ours).toEqual(own);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w1, b1, w2]);
  });

  it('registering twice is a no-op; restore puts wasm kernels back', () => {
    const own = tf.getKernel('Identity', 'wasm')!.kernelFunc;
    const restore = registerCopyFreeWasmKernels();
    const ours = tf.getKernel('Identity', 'wasm')!.kernelFunc;
    expect(ours).not.toBe(own);
    registerCopyFreeWasmKernels()();
    expect(tf.getKernel('Identity', 'wasm')!.kernelFunc).toBe(ours);
    restore();
    expect(tf.getKernel('Identity', 'wasm')!.kernelFunc).toBe(own);
  });
});
