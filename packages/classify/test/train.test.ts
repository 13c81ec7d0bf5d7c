import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildClassifier, normalizeCrops, softmaxRows } from '../src/index.js';
import { predictLogits, synthCrops } from '../src/train.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Training steps run in the trainer's machinery (apps/train/src/classify/classifier-step.ts,
// tested in apps/train/test/classify-step.test.ts); here: the model's shape and batched inference.
describe('classifier model', () => {
  it('logits [N, K]; predictLogits in batches equals one predict call and leaks nothing', () => {
    const cropSize = 32;
    const data = synthCrops(1, { cropSize, margin: 0.15 }, 11);
    const model = buildClassifier({ numClasses: 6, cropSize, depth: 18, widthMultiplier: 0.0625 });
    expect(model.outputs[0]!.shape).toEqual([null, 6]);
    const crops = data.crops.slice(0, 5);
    const x = normalizeCrops(crops);
    const before = tf.memory().numTensors;
    const batched = predictLogits(model, x, cropSize, 2);
    expect(tf.memory().numTensors).toBe(before);
    const whole = tf.tidy(
      () =>
        (model.predict(tf.tensor4d(x, [5, cropSize, cropSize, 3])) as tf.Tensor).dataSync() as Float32Array,
    );
    expect(batched.length).toBe(5 * 6);
    batched.forEach((v, i) => {
      expect(v).toBeCloseTo(whole[i]!, 4);
    });
    model.dispose();
  }, 300_000);

  it('a seed fixes the initial weights (same seed, same weights; another seed, other kernels)', () => {
    const build = (seed: number) =>
      buildClassifier({ numClasses: 3, cropSize: 32, depth: 18, widthMultiplier: 0.0625, seed });
    const [a, b, c] = [build(7), build(7), build(8)];
    const w = (m: tf.LayersModel) => m.getWeights().map((t) => Array.from(t.dataSync()));
    expect(w(a)).toEqual(w(b));
    const kernel = (m: tf.LayersModel) => Array.from(m.getLayer('logits').getWeights()[0]!.dataSync());
    expect(kernel(a)).not.toEqual(kernel(c));
    // Still He-normal (fan-out) scaled: conv1's 7x7 kernel has std about sqrt(2 / (49 * out channels)).
    const k1 = a.getLayer('conv1').getWeights()[0]!;
    const he = Math.sqrt(2 / (49 * k1.shape[3]!));
    const conv1 = Array.from(k1.dataSync());
    const std = Math.sqrt(conv1.reduce((s, v) => s + v * v, 0) / conv1.length);
    expect(std).toBeGreaterThan(0.5 * he);
    expect(std).toBeLessThan(1.5 * he);
    for (const m of [a, b, c]) m.dispose();
  });

  it('softmax rows sum to 1 and keep the order of the logits', () => {
    const p = softmaxRows(new Float32Array([1, 2, 3, 1000, 0, -1000]), 3);
    expect(p[0]! + p[1]! + p[2]!).toBeCloseTo(1, 6);
    expect(p[2]! > p[1]! && p[1]! > p[0]!).toBe(true);
    expect(p[3]).toBeCloseTo(1, 6);
  });
});
