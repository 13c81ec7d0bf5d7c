import { Rng } from '@bmc/data';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildClassifier, normalizeCrops, softmaxRows } from '../src/index.js';
import {
  augmentCrop,
  balancedIndices,
  classifierParams,
  classifierStep,
  type StepOptimizer,
  synthCrops,
} from '../src/train.js';

/** Plain SGD (w -= lr * g) for the test: the trainer's optimizers live in apps/train. */
const sgd: StepOptimizer = {
  apply(params, grads, lr) {
    for (const p of params) {
      const g = grads[p.variable.name];
      if (!g) continue;
      const next = tf.tidy(() => tf.sub(p.variable, tf.mul(g, lr)));
      p.variable.assign(next);
      next.dispose();
    }
  },
};

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// The learning test (loss falls, held-out accuracy) runs through `bmc classify train` in
// apps/train/test/classify.test.ts on the fast backend; here: the model's shape and that a step
// is finite, changes the weights and leaks nothing (the tfjs cpu backend is slow for more).
describe('classifier model and step', () => {
  it('logits [N, K]; a step is finite, moves the weights and leaves tf.memory() flat', () => {
    const cropSize = 32;
    const data = synthCrops(1, { cropSize, margin: 0.15 }, 11);
    const model = buildClassifier({ numClasses: 6, cropSize, depth: 18, widthMultiplier: 0.0625 });
    expect(model.outputs[0]!.shape).toEqual([null, 6]);
    const params = classifierParams(model);
    const ctx = { model, params, optimizer: sgd, clipGradNorm: 5 };
    const rng = new Rng(5);
    const fc = params.find((p) => p.key.startsWith('logits/kernel'))!;
    const w0 = fc.variable.dataSync().slice();
    const before = tf.memory().numTensors;
    for (let s = 0; s < 2; s++) {
      const idx = balancedIndices(data.labels, rng, 4);
      const x = tf.tensor4d(normalizeCrops(idx.map((i) => augmentCrop(rng, data.crops[i]!))), [
        4,
        cropSize,
        cropSize,
        3,
      ]);
      const r = classifierStep(ctx, x, Int32Array.from(idx.map((i) => data.labels[i]!)), 0.05);
      x.dispose();
      expect(r.finite).toBe(true);
      expect(r.loss).toBeGreaterThan(0);
      expect(tf.memory().numTensors).toBe(before);
    }
    expect(fc.variable.dataSync().some((v, i) => v !== w0[i])).toBe(true);
    model.dispose();
  }, 300_000);

  it('softmax rows sum to 1 and keep the order of the logits', () => {
    const p = softmaxRows(new Float32Array([1, 2, 3, 1000, 0, -1000]), 3);
    expect(p[0]! + p[1]! + p[2]!).toBeCloseTo(1, 6);
    expect(p[2]! > p[1]! && p[1]! > p[0]!).toBe(true);
    expect(p[3]).toBeCloseTo(1, 6);
  });
});
