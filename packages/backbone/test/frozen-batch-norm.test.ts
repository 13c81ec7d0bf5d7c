import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { FrozenBatchNorm } from '../src/frozen-batch-norm.js';

// FrozenBatchNorm is one op with a hand-written gradient (so that it keeps no activation for backward):
// check value and input gradient against the formula computed by hand.
describe('FrozenBatchNorm', () => {
  it('computes x * gamma / sqrt(var + eps) + beta - mean * gamma / sqrt(var + eps), with that gradient', () => {
    const bn = new FrozenBatchNorm({ epsilon: 1e-5 });
    bn.build([1, 2, 2, 2]);
    const gamma = [2, -0.5];
    const beta = [0.25, 1];
    const mean = [1, -2];
    const variance = [4, 0.25];
    bn.setWeights([tf.tensor1d(gamma), tf.tensor1d(beta), tf.tensor1d(mean), tf.tensor1d(variance)]);
    const xs = [1, 2, 3, 4, 5, 6, 7, 8];
    const r = [0.5, -1, 2, 3, -4, 1.5, 1, -2]; // dL/dy
    const x = tf.tensor4d(xs, [1, 2, 2, 2]);
    const y = bn.apply(x) as tf.Tensor;
    const g = tf.grad((t: tf.Tensor) =>
      tf.sum(tf.mul(bn.apply(t) as tf.Tensor, tf.tensor4d(r, [1, 2, 2, 2]))),
    )(x);
    const scale = gamma.map((gm, c) => gm / Math.sqrt(variance[c]! + 1e-5));
    const expectY = xs.map((v, i) => v * scale[i % 2]! + beta[i % 2]! - mean[i % 2]! * scale[i % 2]!);
    const expectG = r.map((v, i) => v * scale[i % 2]!);
    Array.from(y.dataSync()).forEach((v, i) => {
      expect(v).toBeCloseTo(expectY[i]!, 5);
    });
    Array.from(g.dataSync()).forEach((v, i) => {
      expect(v).toBeCloseTo(expectG[i]!, 5);
    });
    tf.dispose([x, y, g]);
  });
});
