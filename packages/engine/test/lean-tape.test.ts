import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { installLeanTape } from '../src/lean-gradients.js';

beforeAll(async () => {
  await tf.setBackend('cpu'); // the hooks are backend-independent; wasm lacks a filter gradient without the engine
});

// A conv net with what the tape hooks touch: padding, fused convolutions with a linear activation (with
// and without bias) and with ReLU, a residual addition of equal shapes, a reshape and a concatenation.
function net(x: tf.Tensor4D, w: tf.Variable[]): tf.Scalar {
  const [w1, w2, w3, b2] = w as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
  const p = tf.pad(x, [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  const a = tf.fused.conv2d({ x: p, filter: w1 as tf.Tensor4D, strides: 1, pad: 'valid' }); // linear, no bias
  const r = tf.relu(a);
  const c = tf.fused.conv2d({ x: r, filter: w2 as tf.Tensor4D, strides: 1, pad: 'same', bias: b2 }); // linear + bias
  const d = tf.fused.conv2d({ x: r, filter: w3 as tf.Tensor4D, strides: 1, pad: 'same', activation: 'relu' });
  const s = tf.add(c, d);
  const flat = tf.concat([tf.reshape(s, [-1]), tf.reshape(tf.mul(a, 0.5), [-1])]);
  return tf.sum(tf.mul(flat, tf.linspace(-1, 1, flat.size))) as tf.Scalar;
}

describe('installLeanTape', () => {
  it('keeps the gradients of tfjs exactly and keeps less on the tape', async () => {
    const x = tf.randomNormal([2, 12, 12, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = [
      tf.variable(tf.randomNormal([3, 3, 3, 8], 0, 0.3, 'float32', 2)),
      tf.variable(tf.randomNormal([3, 3, 8, 8], 0, 0.3, 'float32', 3)),
      tf.variable(tf.randomNormal([3, 3, 8, 8], 0, 0.3, 'float32', 4)),
      tf.variable(tf.randomNormal([8], 0, 0.3, 'float32', 5)),
    ];
    const run = async () => {
      let grads: tf.Tensor[] = [];
      const profile = await tf.profile(() => {
        const r = tf.variableGrads(() => net(x, w));
        r.value.dispose();
        grads = Object.values(r.grads);
      });
      const values = grads.map((g) => Array.from(g.dataSync()));
      tf.dispose(grads);
      return { values, peak: profile.peakBytes };
    };
    const before = await run();
    installLeanTape();
    const tensors = tf.memory().numTensors;
    const after = await run();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(after.values).toEqual(before.values);
    expect(after.peak).toBeLessThan(before.peak);
    tf.dispose([x, ...w]);
  });
});
