import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { registerFastTileGradient } from '../src/tile-gradient.js';

// Gradient of sum(tile(x, reps) * w) with respect to x: the entries of w that each x element was copied to.
const tileGrad = (x: tf.Tensor, reps: number[], w: tf.Tensor) =>
  tf.tidy(() =>
    tf
      .grad((t: tf.Tensor) => tf.sum(tf.mul(tf.tile(t, reps), w)))(x)
      .arraySync(),
  );

/** LayerNormalization's gradients (input, gamma, beta): its forward pass tiles the statistics and parameters. */
function layerNormGrads(x: tf.Tensor3D, w: tf.Tensor3D, ln: tf.layers.Layer): number[][] {
  return tf.tidy(() => {
    const vars = ln.trainableWeights.map((v) => v.read() as tf.Variable);
    const f = () => tf.sum(tf.mul(ln.apply(x) as tf.Tensor, w)) as tf.Scalar;
    const { grads } = tf.variableGrads(f, vars);
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(ln.apply(t) as tf.Tensor, w)))(x);
    return [dx, ...vars.map((v) => grads[v.name]!)].map((g) => Array.from(g.dataSync()));
  });
}

describe('Tile gradient (reshape + sum instead of a Slice and an Add per repetition)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('equals tfjs-core 4.22 own gradient for ranks 1-4 and a LayerNormalization, and the hand-computed sum', () => {
    const cases: Array<[number[], number[]]> = [
      [[3], [4]],
      [
        [2, 3],
        [3, 1],
      ],
      [
        [1, 1, 5],
        [4, 6, 1],
      ],
      [
        [2, 1, 3, 2],
        [1, 3, 2, 2],
      ],
    ];
    const inputs = cases.map(([shape, reps], i) => {
      const x = tf.randomNormal(shape, 0, 1, 'float32', i + 1);
      const w = tf.randomNormal(
        shape.map((s, k) => s * reps[k]!),
        0,
        1,
        'float32',
        i + 11,
      );
      return { x, reps, w };
    });
    const ln = tf.layers.layerNormalization({ axis: -1 });
    const lx = tf.randomNormal([3, 5, 4], 0, 1, 'float32', 21) as tf.Tensor3D;
    const lw = tf.randomNormal([3, 5, 4], 0, 1, 'float32', 22) as tf.Tensor3D;
    ln.apply(lx); // builds gamma / beta
    ln.setWeights([
      tf.randomUniform([4], 0.5, 1.5, 'float32', 23),
      tf.randomNormal([4], 0, 0.2, 'float32', 24),
    ]);

    const before = inputs.map(({ x, reps, w }) => tileGrad(x, reps, w));
    const lnBefore = layerNormGrads(lx, lw, ln);
    registerFastTileGradient();
    registerFastTileGradient(); // idempotent
    const n = tf.memory().numTensors;
    const after = inputs.map(({ x, reps, w }) => tileGrad(x, reps, w));
    const lnAfter = layerNormGrads(lx, lw, ln);
    expect(tf.memory().numTensors).toBe(n);

    const flat = (v: unknown) => (Array.isArray(v) ? v.flat(4) : [v]) as number[];
    after.forEach((g, i) => {
      const a = flat(g);
      const b = flat(before[i]);
      expect(a).toHaveLength(b.length);
      a.forEach((v, j) => {
        expect(v).toBeCloseTo(b[j]!, 5);
      });
    });
    lnAfter.forEach((g, i) => {
      g.forEach((v, j) => {
        expect(v).toBeCloseTo(lnBefore[i]![j]!, 5);
      });
    });
    // By hand: x of shape [3] tiled 4 times; w = 0..11, so dx[j] = w[j] + w[j + 3] + w[j + 6] + w[j + 9].
    const w = tf.range(0, 12);
    expect(tileGrad(tf.zeros([3]), [4], w)).toEqual([18, 22, 26]);
    tf.dispose([...inputs.flatMap(({ x, w }) => [x, w]), lx, lw, w]);
    ln.dispose();
  });
});
