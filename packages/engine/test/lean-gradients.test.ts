import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  leanGradients,
  leanVariableGrads,
  registerLeanReluGradient,
  withoutTape,
} from '../src/lean-gradients.js';

beforeAll(async () => {
  await tf.setBackend('wasm');
});

// A small net that exercises what the lean reverse mode changes: a tensor read by two ops (its gradient
// accumulates), a broadcast, an op off every x -> y path, a gradient handed to two inputs (Add of equal
// shapes), ReLU.
function net(w1: tf.Tensor, w2: tf.Tensor, x: tf.Tensor, frozen: tf.Tensor): tf.Scalar {
  const h = tf.relu(tf.matMul(x, w1));
  const unused = tf.mul(tf.exp(frozen), 3); // depends on no variable: off the path
  const z = tf.add(tf.matMul(h, w2), tf.mul(tf.matMul(h, tf.slice(w2, [0, 0], [3, 2])), 0.5)); // h and w2 read twice
  const s = tf.add(z, z);
  return tf.sum(tf.mul(tf.add(s, tf.sum(unused)), tf.tensor1d([1, -2]))) as tf.Scalar;
}

describe('leanGradients', () => {
  it('gives the gradients of tf.grads, hand-checked on a linear case, and leaves no tensors behind', () => {
    const x = tf.tensor2d([
      [1, -2, 3],
      [0.5, 1, -1],
    ]);
    const w1 = tf.variable(
      tf.tensor2d([
        [0.1, -0.2, 0.3],
        [0.4, 0.5, -0.6],
        [-0.7, 0.8, 0.9],
      ]),
    );
    const w2 = tf.variable(
      tf.tensor2d([
        [1, 2],
        [3, -4],
        [0.5, 0.25],
      ]),
    );
    const frozen = tf.tensor1d([0.1, 0.2]);
    const ref = tf.grads((a: tf.Tensor, b: tf.Tensor) => net(a, b, x, frozen))([w1, w2]);
    const before = tf.memory().numTensors;
    const { value, grads } = leanGradients(() => net(w1, w2, x, frozen), [w1, w2]);
    expect(tf.memory().numTensors - before).toBe(3); // the value and two gradients, nothing else
    expect(grads.length).toBe(2);
    grads.forEach((g, i) => {
      expect(Array.from(g!.dataSync())).toEqual(Array.from(ref[i]!.dataSync()));
    });
    // By hand: y = sum(w . relu(x) ...) is linear in a variable it does not pass through ReLU before:
    // d/dc (sum(tf.mul(c, v))) = v.
    const c = tf.variable(tf.tensor1d([3, 4]));
    const v = tf.tensor1d([5, -6]);
    const lin = leanVariableGrads(() => tf.sum(tf.mul(c, v)) as tf.Scalar, [c]);
    expect(Array.from(lin.grads[c.name]!.dataSync())).toEqual([5, -6]);
    tf.dispose([
      value,
      ...grads.map((g) => g!),
      ...ref,
      x,
      w1,
      w2,
      frozen,
      c,
      v,
      lin.value,
      lin.grads[c.name]!,
    ]);
  });

  it('returns undefined for a variable the loss does not depend on, and refuses nesting', () => {
    const a = tf.variable(tf.scalar(2));
    const b = tf.variable(tf.scalar(5));
    const { value, grads } = leanGradients(() => tf.square(a) as tf.Scalar, [a, b]);
    expect(grads[0]!.dataSync()[0]).toBe(4);
    expect(grads[1]).toBeUndefined();
    expect(() =>
      tf.grad((t: tf.Tensor) => leanGradients(() => tf.sum(t) as tf.Scalar, [a]).value)(tf.scalar(1)),
    ).toThrow(/inside another gradient computation/);
    tf.dispose([a, b, value, grads[0]!]);
  });

  it('withoutTape: ops inside are not differentiated (their result is a constant)', () => {
    const a = tf.variable(tf.scalar(3));
    const { value, grads } = leanGradients(() => {
      const c = withoutTape(() => tf.mul(a, a)); // 9, a constant here
      return tf.mul(c, a) as tf.Scalar; // d/da (9 a) = 9
    }, [a]);
    expect(value.dataSync()[0]).toBe(27);
    expect(grads[0]!.dataSync()[0]).toBe(9);
    tf.dispose([a, value, grads[0]!]);
  });

  it('the ReLU gradient that saves the output equals dy * (x > 0), zero at 0', () => {
    registerLeanReluGradient();
    const x = tf.tensor1d([-2, -0, 0, 1e-30, 3]);
    const dy = tf.tensor1d([1, 2, 3, 4, 5]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.relu(t), dy)))(x);
    expect(Array.from(g.dataSync())).toEqual([0, 0, 0, 4, 5]);
    tf.dispose([x, dy, g]);
  });
});
