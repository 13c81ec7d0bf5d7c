import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerMissingWasmKernels } from '../src/wasm-missing-kernels.js';

describe('UnsortedSegmentSum on wasm', () => {
  it('matches the cpu backend, and makes gather differentiable on wasm', async () => {
    const x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const ids = [2, 0, 2, -1]; // -1: dropped, as TensorFlow does
    const compute = () => {
      const t = tf.tensor2d(x, [4, 3]);
      const seg = tf.unsortedSegmentSum(t, tf.tensor1d(ids, 'int32'), 3);
      const g = tf.grad((p: tf.Tensor) =>
        tf.sum(tf.mul(tf.gather(p, [2, 0, 2]), tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3]))),
      )(t);
      return [Array.from(seg.dataSync()), Array.from(g.dataSync())];
    };
    await tf.setBackend('cpu');
    const expected = compute();
    // by hand: segment 0 = row 1 = [4,5,6]; segment 2 = rows 0+2 = [8,10,12]; segment 1 empty
    expect(expected[0]).toEqual([4, 5, 6, 0, 0, 0, 8, 10, 12]);
    await tf.setBackend('wasm');
    registerMissingWasmKernels();
    expect(compute()).toEqual(expected);
    await tf.setBackend('cpu');
  });
});
