import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { listCheckpoints, runPaths } from '../src/run/run-dir.js';
import { loadSplits, trainLoader } from '../src/train/data.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { trainStep } from '../src/train/step.js';
import { setUpEngine, train } from '../src/train/trainer.js';
import { smallSet, stepContext } from './small-config.js';

const config = loadConfig({ preset: 'tiny', set: smallSet(64, 4, 1) });

beforeAll(async () => {
  await setUpEngine(config.run, () => {});
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

  it('bmc train stops after run.maxBadSteps skipped steps in a row, with a message and a checkpoint', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'bmc-nan-'));
    // A learning rate of 1e38 overflows the weights on the first step; every step after it is NaN.
    const cfg = loadConfig({
      preset: 'tiny',
      set: [
        ...smallSet(64, 8, 1),
        'optim.type=sgd',
        'optim.lr=1e38',
        'optim.warmupIters=0',
        'run.maxBadSteps=2',
        'run.evalEvery=0',
      ],
    });
    const lines: string[] = [];
    await expect(train(cfg, { runsDir: runs, log: (l) => lines.push(l), progress: false })).rejects.toThrow(
      /loss was not finite for 2 steps in a row/,
    );
    expect(lines.filter((l) => /step skipped/.test(l))).toHaveLength(2);
    const [run] = readdirSync(runs);
    expect(listCheckpoints(runPaths(join(runs, run!))).length).toBeGreaterThan(0);
    rmSync(runs, { recursive: true, force: true });
  }, 120_000);
});
