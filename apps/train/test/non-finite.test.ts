import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { loadSplits, trainLoader } from '../src/train/data.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { trainStep } from '../src/train/step.js';
import { setUpEngine } from '../src/train/trainer.js';
import { smallSet, stepContext } from './small-config.js';

const config = loadConfig({ preset: 'tiny', set: smallSet(64, 4, 1) });

beforeAll(async () => {
  await setUpEngine(config, () => {});
});

async function firstOf(splits: Awaited<ReturnType<typeof loadSplits>>) {
  for await (const b of trainLoader(config, splits.train, 0).epoch(0)) return b;
  throw new Error('no batch');
}

describe('a step whose loss is not finite', () => {
  for (const microBatch of [0, 2]) {
    it(`changes no weight and leaks nothing (microBatch ${microBatch})`, async () => {
      const splits = await loadSplits(config);
      const batch = await firstOf(splits);
      const detector = buildDetector(toDetectorConfig(config, 1));
      // A NaN in the classification bias makes every logit, and so the loss, NaN.
      const bias = detector.model.weights.find((w) => /cls_logits\/bias$/.test(w.originalName))!;
      bias.write(tf.fill(bias.shape as number[], Number.NaN));
      const before = detector.model.getWeights().map((w) => w.dataSync().slice());
      const ctx = stepContext(detector, config, 'atss', 64, { microBatch });
      const tensors = tf.memory().numTensors;
      const r = trainStep(ctx, batch, 0.01);
      expect(r.finite).toBe(false);
      expect(Number.isNaN(r.total)).toBe(true);
      expect(tf.memory().numTensors).toBe(tensors);
      detector.model.getWeights().forEach((w, i) => {
        const now = w.dataSync();
        const was = before[i]!;
        for (let k = 0; k < now.length; k++) {
          if (!(Object.is(now[k], was[k]) || (Number.isNaN(now[k]!) && Number.isNaN(was[k]!)))) {
            throw new Error(`weight ${i} changed at ${k}`);
          }
        }
      });
      ctx.optimizer.dispose();
      detector.dispose();
    }, 120_000);
  }
});
