import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { loadSplits, trainLoader } from '../src/train/data.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { ReplicaPool, splitShares } from '../src/train/replicas.js';
import { type StepContext, trainStep } from '../src/train/step.js';
import { setUpEngine, train } from '../src/train/trainer.js';
import { smallSet, stepContext } from './small-config.js';

// Data-parallel replicas must give the whole batch's step: same loss, same weights after each step, on
// every replica (they load the main thread's weights), and no tensors left behind on any thread.
// Needs the built worker (dist/replica-worker.js): `pnpm test` builds first.
const SET = [...smallSet(64, 8, 1), 'model.backbone.frozenBatchNorm=true'];
const config = loadConfig({ preset: 'tiny', set: SET });

beforeAll(async () => {
  await setUpEngine(config.run, () => {}, 1);
});

describe('splitShares', () => {
  it('splits as evenly as possible, larger shares first, never an empty share', () => {
    expect(splitShares(4, 2)).toEqual([
      [0, 2],
      [2, 4],
    ]);
    expect(splitShares(5, 3)).toEqual([
      [0, 2],
      [2, 4],
      [4, 5],
    ]);
    expect(splitShares(1, 4)).toEqual([[0, 1]]);
  });
});

describe('ReplicaPool (data-parallel worker threads)', () => {
  const detector = buildDetector(toDetectorConfig(config, 1));
  const initial = detector.model.getWeights().map((w) => w.clone());
  let pool: ReplicaPool;
  afterAll(async () => {
    await pool?.close();
    tf.dispose(initial);
    detector.dispose();
  });

  const ctxFor = (assigner: 'atss' | 'ota') => stepContext(detector, config, assigner, 64);

  /** Two optimizer steps from the initial weights; the weights after them, and each step's result. */
  async function twoSteps(
    run: (ctx: StepContext, batch: never) => Promise<unknown> | unknown,
    assigner: 'atss' | 'ota',
  ) {
    detector.model.setWeights(initial);
    const splits = await loadSplits(config);
    const batches = [];
    for await (const b of trainLoader(config, splits.train, 0).epoch(0)) batches.push(b);
    const ctx = ctxFor(assigner);
    const results = [];
    for (const b of batches.slice(0, 2)) results.push(await run(ctx, b as never));
    ctx.optimizer.dispose();
    return {
      results: results as Awaited<ReturnType<typeof trainStep>>[],
      weights: detector.model.getWeights().map((w) => w.dataSync().slice()),
    };
  }

  it('two replicas step like one process on the whole batch (ATSS and OTA), replicas in sync, no leaks', async () => {
    for (const assigner of ['atss', 'ota'] as const) {
      // The workers build their assigner from the config.
      await pool?.close();
      const withAssigner = loadConfig({ preset: 'tiny', set: [...SET, `assigner.type=${assigner}`] });
      pool = await ReplicaPool.start(detector.model, {
        config: withAssigner,
        numClasses: 1,
        replicas: 2,
        threads: 1,
      });
      expect(pool.size).toBe(2);
      const single = await twoSteps((ctx, b) => trainStep(ctx, b, 0.01), assigner);
      const before = tf.memory().numTensors;
      const parallel = await twoSteps((ctx, b) => pool.step(ctx, b, 0.01), assigner);
      // Main-thread tensors: only the optimizer's buffers came and went.
      expect(tf.memory().numTensors).toBe(before);
      single.results.forEach((r, i) => {
        const p = parallel.results[i]!;
        expect(p.finite).toBe(true);
        expect(p.numPositives).toBe(r.numPositives);
        expect(Math.abs(p.total - r.total)).toBeLessThan(1e-4 * Math.abs(r.total));
        expect(p.gradNorm / r.gradNorm).toBeCloseTo(1, 4);
      });
      let maxDiff = 0;
      let maxChange = 0;
      single.weights.forEach((w, i) => {
        const p = parallel.weights[i]!;
        const w0 = initial[i]!.dataSync();
        for (let k = 0; k < w.length; k++) {
          maxDiff = Math.max(maxDiff, Math.abs(w[k]! - p[k]!));
          maxChange = Math.max(maxChange, Math.abs(w[k]! - w0[k]!));
        }
      });
      expect(maxChange).toBeGreaterThan(0);
      expect(maxDiff / maxChange, assigner).toBeLessThan(1e-4);
    }
    // The worker's tensor count is the same after every step.
    const counts: number[] = [];
    for (let i = 0; i < 2; i++) {
      await twoSteps((ctx, b) => pool.step(ctx, b, 0.01), 'atss');
      counts.push(pool.workerTensors[0]!);
    }
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts[1]).toBe(counts[0]);
  }, 300_000);

  it("a replica error reaches the caller with the worker's message", async () => {
    const bad = buildDetector(
      toDetectorConfig(loadConfig({ preset: 'tiny', set: [...SET, 'model.head.numConvs=1'] }), 1),
    );
    await expect(
      ReplicaPool.start(bad.model, { config, numClasses: 1, replicas: 2, threads: 1 }),
    ).rejects.toThrow(/does not match the main thread/);
    bad.dispose();
  }, 120_000);

  it('bmc train with run.replicas=2 trains, logs the replicas and stops its workers', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'bmc-replicas-'));
    const lines: string[] = [];
    const cfg = loadConfig({
      preset: 'tiny',
      set: [...SET, 'run.replicas=2', 'run.evalEvery=0', 'optim.epochs=1'],
    });
    const r = await train(cfg, { runsDir: runs, log: (l) => lines.push(l), progress: false, maxSteps: 2 });
    expect(r.stopped).toBe('max-steps');
    expect(r.state.step).toBe(2);
    expect(lines.some((l) => /data-parallel: 2 replicas/.test(l))).toBe(true);
    r.detector.dispose();
    rmSync(runs, { recursive: true, force: true });
  }, 300_000);
});
