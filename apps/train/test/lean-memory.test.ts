import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { loadSplits, trainLoader } from '../src/train/data.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { batchLossAndGrads, trainableParams } from '../src/train/step.js';
import { setUpEngine } from '../src/train/trainer.js';
import { smallSet, stepContext } from './small-config.js';

// The lean step (layer outputs freed once read, frozen layers off the tape, saved tensors and
// intermediate gradients freed during backward, FrozenBatchNorm as one op, ReLU saving its output) must
// compute the gradients of tfjs' own model.apply + tf.variableGrads: the same operations in the same
// order, so they agree to float rounding (1e-5 asked for; they are expected to be identical).
const SIZE = 64;

beforeAll(async () => {
  await setUpEngine(loadConfig({ preset: 'tiny' }).run, () => {});
});

async function gradsBothWays(extra: string[]) {
  const config = loadConfig({ preset: 'tiny', set: [...smallSet(SIZE, 4, 1), ...extra] });
  const splits = await loadSplits(config);
  let batch: Awaited<ReturnType<typeof firstOf>> | undefined;
  async function firstOf() {
    for await (const b of trainLoader(config, splits.train, 0).epoch(0)) return b;
    throw new Error('no batch');
  }
  batch = await firstOf();
  const detector = buildDetector(toDetectorConfig(config, 1));
  const variables = trainableParams(detector.model).map((p) => p.variable);
  const stats = detector.model.nonTrainableWeights.map((w) => w.read().clone());
  const run = (memory: 'lean' | 'tfjs') => {
    // The forward pass in training mode moves BatchNorm statistics: start both from the same ones.
    detector.model.nonTrainableWeights.forEach((w, i) => {
      w.write(stats[i]!.clone());
    });
    const ctx = stepContext(detector, config, 'atss', SIZE, { memory, microBatch: 0 });
    const before = tf.memory().numTensors;
    const r = batchLossAndGrads(ctx, batch!, variables);
    const grads = Object.fromEntries(
      Object.entries(r.grads).map(([k, g]) => [k, g.dataSync() as Float32Array]),
    );
    tf.dispose(r.grads);
    return { loss: r.parts.total, grads, leaked: tf.memory().numTensors - before };
  };
  const ref = run('tfjs');
  const lean = run('lean');
  tf.dispose(stats);
  detector.dispose();
  return { ref, lean, numTrainable: variables.length };
}

function maxAbsDiff(a: Record<string, Float32Array>, b: Record<string, Float32Array>) {
  let m = 0;
  let scale = 0;
  for (const [k, g] of Object.entries(a)) {
    const h = b[k]!;
    expect(h, k).toBeDefined();
    for (let i = 0; i < g.length; i++) {
      m = Math.max(m, Math.abs(g[i]! - h[i]!));
      scale = Math.max(scale, Math.abs(g[i]!));
    }
  }
  return { m, scale };
}

describe('lean training memory: same gradients as tfjs', () => {
  for (const [label, extra] of [
    ['batch-statistics BatchNorm, nothing frozen (the tiny preset)', []],
    [
      'FrozenBatchNorm, stem and layer1 frozen (the thesis arrangement)',
      ['model.backbone.frozenBatchNorm=true', 'model.backbone.frozenStages=1'],
    ],
  ] as const) {
    it(label, async () => {
      const { ref, lean, numTrainable } = await gradsBothWays([...extra]);
      expect(Object.keys(lean.grads).sort()).toEqual(Object.keys(ref.grads).sort());
      expect(Object.keys(ref.grads).length).toBe(numTrainable);
      expect(lean.loss).toBeCloseTo(ref.loss, 6);
      const { m, scale } = maxAbsDiff(ref.grads, lean.grads);
      expect(scale).toBeGreaterThan(0);
      expect(m).toBeLessThanOrEqual(1e-5);
      // The caller owns only the gradients, which it disposed: nothing else may stay behind.
      expect(lean.leaked).toBe(0);
      expect(ref.leaked).toBe(0);
    });
  }
});
