import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { loadSplits, trainLoader } from '../src/train/data.js';
import { lossOptions, toDetectorConfig } from '../src/train/detector.js';
import { Sgd } from '../src/train/sgd.js';
import { trainStep } from '../src/train/step.js';
import { setUpEngine } from '../src/train/trainer.js';
import { smallSet, stepContext } from './small-config.js';

// Gradient accumulation must reproduce the whole-batch step: same loss, same weights after one SGD step
// (momentum 0, so the update is lr x gradient and the weights compare the gradients directly).
const SET = smallSet(64, 4, 1);

// The trainer's backend set-up: wasm with the engine's kernels.
beforeAll(async () => {
  await setUpEngine(loadConfig({ preset: 'tiny' }).run, () => {});
});

async function firstBatch(frozenBatchNorm: boolean) {
  const config = loadConfig({
    preset: 'tiny',
    set: [...SET, `model.backbone.frozenBatchNorm=${frozenBatchNorm}`],
  });
  const splits = await loadSplits(config);
  for await (const b of trainLoader(config, splits.train, 0).epoch(0)) return { config, batch: b };
  throw new Error('no batch');
}

/** One step from the same initial weights with and without micro-batches; the weights after each. */
async function compare(opts: {
  frozenBatchNorm: boolean;
  normalization: 'per-image' | 'batch';
  assigner: 'atss' | 'ota';
  microBatch: number;
}) {
  const { config, batch } = await firstBatch(opts.frozenBatchNorm);
  const detector = buildDetector(toDetectorConfig(config, 1));
  const initial = detector.model.getWeights().map((w) => w.clone());
  const run = (microBatch: number) => {
    detector.model.setWeights(initial);
    const ctx = stepContext(detector, config, opts.assigner, 64, {
      loss: { ...lossOptions(config), normalization: opts.normalization },
      optimizer: new Sgd({ momentum: 0, weightDecay: 0 }),
      clipGradNorm: 0,
      microBatch,
    });
    const before = tf.memory().numTensors;
    const r = trainStep(ctx, batch, 0.01);
    ctx.optimizer.dispose();
    const leaked = tf.memory().numTensors - before;
    const delta = detector.model.getWeights().map((w, i) => {
      const d = tf.sub(w, initial[i]!);
      const v = d.dataSync() as Float32Array;
      d.dispose();
      return v;
    });
    return { r, delta, leaked };
  };
  const whole = run(0);
  const micro = run(opts.microBatch);
  let maxDiff = 0;
  let maxDelta = 0;
  whole.delta.forEach((d, i) => {
    const m = micro.delta[i]!;
    for (let j = 0; j < d.length; j++) {
      maxDiff = Math.max(maxDiff, Math.abs(d[j]! - m[j]!));
      maxDelta = Math.max(maxDelta, Math.abs(d[j]!));
    }
  });
  tf.dispose(initial);
  detector.dispose();
  return { whole, micro, relDiff: maxDiff / maxDelta };
}

describe('trainStep with microBatch (gradient accumulation)', () => {
  for (const [normalization, assigner, microBatch] of [
    ['per-image', 'atss', 1],
    ['batch', 'atss', 3],
    ['per-image', 'ota', 2],
  ] as const) {
    it(`equals the whole batch of 4 with frozen BatchNorm (${normalization} normalisation, ${assigner}, chunks of ${microBatch})`, async () => {
      const { whole, micro, relDiff } = await compare({
        frozenBatchNorm: true,
        normalization,
        assigner,
        microBatch,
      });
      expect(whole.r.finite && micro.r.finite).toBe(true);
      expect(micro.r.numPositives).toBe(whole.r.numPositives);
      expect(whole.r.numPositives).toBeGreaterThan(0);
      for (const k of ['total', 'cls', 'box', 'iou'] as const) {
        // float32 convolutions on different batch shapes round differently: relative 1e-4
        expect(Math.abs(micro.r[k] - whole.r[k]), k).toBeLessThan(1e-4 * Math.abs(whole.r[k]) + 1e-7);
      }
      // measured 4e-6..1.1e-5 of the largest update; 2.4 with batch-statistics BatchNorm
      expect(micro.r.gradNorm / whole.r.gradNorm).toBeCloseTo(1, 4);
      // 2.3e-4 seen once in CI (multi-threaded onnxruntime sums in another order); the control differs by 2.4.
      expect(relDiff).toBeLessThan(1e-3);
      expect(whole.leaked).toBe(0);
      expect(micro.leaked).toBe(0);
    }, 120_000);
  }

  it('differs from the whole batch when BatchNorm uses batch statistics (why the presets freeze it)', async () => {
    const { relDiff } = await compare({
      frozenBatchNorm: false,
      normalization: 'per-image',
      assigner: 'atss',
      microBatch: 1,
    });
    expect(relDiff).toBeGreaterThan(1e-2);
  }, 120_000);
});
