import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { learningRate } from '../src/train/schedule.js';
import { clipGradNorm, Sgd } from '../src/train/sgd.js';
import fx from './fixtures/torch_sgd.json' with { type: 'json' };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('Sgd equals torch.optim.SGD(momentum=0.9, weight_decay=5e-4) with MultiStepLR', () => {
  it('follows the PyTorch trajectory for 6 steps', () => {
    const w = tf.variable(tf.tensor2d(fx.init, [2, 3]), true, 'w');
    const target = tf.tensor2d(fx.target, [2, 3]);
    const coef = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const sgd = new Sgd({ momentum: 0.9, weightDecay: 5e-4 });
    const schedule = { lr: 0.1, steps: [3, 5], gamma: 0.1, warmupIters: 0, warmupFactor: 1 };
    for (let epoch = 0; epoch < 6; epoch++) {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.mul(tf.square(tf.sub(w, target)), coef)) as tf.Scalar,
      );
      value.dispose();
      const g = Array.from(grads.w!.dataSync());
      g.forEach((v, i) => {
        expect(v).toBeCloseTo(fx.grads[epoch]![i]!, 4);
      });
      const lr = learningRate(schedule, 1000, epoch);
      expect(lr).toBeCloseTo(fx.lrs[epoch]!, 12);
      sgd.apply([{ key: 'w', variable: w }], grads, lr);
      tf.dispose(grads);
      Array.from(w.dataSync()).forEach((v, i) => {
        expect(v).toBeCloseTo(fx.weights[epoch]![i]!, 4);
      });
    }
    sgd.dispose();
    tf.dispose([w, target, coef]);
  });

  it('leaks no tensors across steps', () => {
    const w = tf.variable(tf.ones([3]), true, 'w2');
    const sgd = new Sgd({ momentum: 0.9, weightDecay: 1e-4 });
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(w)) as tf.Scalar);
      sgd.apply([{ key: 'w', variable: w }], grads, 0.01);
      tf.dispose([value, grads]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    sgd.dispose();
    w.dispose();
  });
});

describe('learning-rate schedule', () => {
  const s = { lr: 0.01, steps: [16, 28], gamma: 0.1, warmupIters: 100, warmupFactor: 0.001 };
  it('linear warm-up from lr * factor to lr', () => {
    expect(learningRate(s, 0, 0)).toBeCloseTo(0.01 * 0.001, 12);
    // halfway: factor * 0.5 + 0.5 = 0.5005
    expect(learningRate(s, 50, 0)).toBeCloseTo(0.01 * 0.5005, 12);
    expect(learningRate(s, 100, 0)).toBeCloseTo(0.01, 12);
  });
  it('x0.1 at epochs 16 and 28 (the published schedule)', () => {
    expect(learningRate(s, 10_000, 15)).toBeCloseTo(0.01, 12);
    expect(learningRate(s, 10_000, 16)).toBeCloseTo(0.001, 12);
    expect(learningRate(s, 10_000, 28)).toBeCloseTo(0.0001, 12);
  });
});

describe('clipGradNorm', () => {
  it('scales to the max norm (3-4-0 triangle: norm 5)', () => {
    const grads: Record<string, tf.Tensor> = { a: tf.tensor1d([3, 0]), b: tf.tensor1d([4]) };
    expect(clipGradNorm(grads, 1)).toBeCloseTo(5, 5);
    expect(Array.from(grads.a!.dataSync())[0]).toBeCloseTo(0.6, 5);
    expect(Array.from(grads.b!.dataSync())[0]).toBeCloseTo(0.8, 5);
    tf.dispose(Object.values(grads));
  });
});

describe('AdamW equals torch.optim.AdamW(lr=0.05, weight_decay=0.01)', () => {
  it('follows the PyTorch trajectory for 6 steps', async () => {
    const { AdamW } = await import('../src/train/adamw.js');
    const ax = (await import('./fixtures/torch_adamw.json', { with: { type: 'json' } })).default;
    const w = tf.variable(tf.tensor2d(ax.init, [2, 3]), true, 'wa');
    const target = tf.tensor2d(ax.target, [2, 3]);
    const coef = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const opt = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
    const before = tf.memory().numTensors;
    for (let step = 0; step < 6; step++) {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(tf.mul(tf.square(tf.sub(w, target)), coef)) as tf.Scalar,
      );
      opt.apply([{ key: 'w', variable: w }], grads, 0.05);
      tf.dispose([value, grads]);
      Array.from(w.dataSync()).forEach((v, i) => {
        expect(v).toBeCloseTo(ax.weights[step]![i]!, 5);
      });
    }
    // two moment buffers, nothing else left behind
    expect(tf.memory().numTensors).toBe(before + 2);
    opt.dispose();
    tf.dispose([w, target, coef]);
  });
});
