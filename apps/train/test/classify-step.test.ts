import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClassifier } from '@bmc/classify';
import { synthCrops } from '@bmc/classify/train';
import { loadCheckpoint } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifierStep } from '../src/classify/classifier-step.js';
import { trainClassifier } from '../src/classify/train-classifier.js';
import { listCheckpoints, runPaths } from '../src/run/run-dir.js';
import { Sgd } from '../src/train/sgd.js';
import { setUpEngine } from '../src/train/trainer.js';

// The classifier trains in the detector trainer's machinery (issue 19: "no second training loop"):
// its step is the trainer's clipping / optimizer / non-finite guard / gradient accumulation, its
// loop is runTaskLoop (checkpoints, resume, time budget, stop signal).

const dir = mkdtempSync(join(tmpdir(), 'bmc-classify-step-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await setUpEngine({ backend: 'auto', nativeKernels: true }, () => {});
});

const S = 32;
const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => w.dataSync().slice() as Float32Array);
const maxAbsDiff = (a: Float32Array[], b: Float32Array[]) =>
  Math.max(...a.map((x, i) => Math.max(...x.map((v, j) => Math.abs(v - b[i]![j]!)))));

/** A classifier without BatchNorm (flatten + linear), where micro-batches are exactly the whole batch. */
function linearClassifier(k: number): tf.LayersModel {
  const input = tf.input({ shape: [S, S, 3] });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: k, name: 'logits' }).apply(flat) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

const crops = synthCrops(2, { cropSize: S, margin: 0.15 }, 5);
const batchOf = (n: number) => {
  const per = S * S * 3;
  const x = new Float32Array(n * per);
  for (let i = 0; i < n; i++) x.set(crops.crops[i]!.data, i * per);
  return { x, labels: crops.labels.slice(0, n), cropSize: S };
};

describe('classifier step (trainer machinery)', () => {
  it('micro-batches of 3 give the whole batch of 8 its weights after one SGD step (no BatchNorm)', () => {
    const model = linearClassifier(6);
    const initial = model.getWeights().map((w) => w.clone());
    const run = (microBatch: number) => {
      model.setWeights(initial);
      const optimizer = new Sgd({ momentum: 0, weightDecay: 0 });
      const before = tf.memory().numTensors;
      const r = classifierStep({ model, optimizer, clipGradNorm: 0, microBatch }, batchOf(8), 0.1);
      optimizer.dispose();
      expect(tf.memory().numTensors).toBe(before);
      return { r, w: weightsOf(model) };
    };
    const whole = run(0);
    const micro = run(3);
    expect(whole.r.finite).toBe(true);
    expect(micro.r.total).toBeCloseTo(whole.r.total, 5);
    expect(micro.r.accuracy).toBe(whole.r.accuracy);
    const w0 = initial.map((w) => w.dataSync() as Float32Array);
    // The step moved the weights, and both runs moved them the same way (up to float summation order).
    const moved = maxAbsDiff(whole.w, w0);
    expect(moved).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(micro.w, whole.w)).toBeLessThan(1e-3 * moved);
    tf.dispose(initial);
    model.dispose();
  });

  it('a non-finite batch changes nothing: weights, optimizer and BatchNorm statistics stay', () => {
    const model = buildClassifier({ numClasses: 6, cropSize: S, depth: 18, widthMultiplier: 0.0625 });
    const optimizer = new Sgd({ momentum: 0.9, weightDecay: 0 });
    const w0 = weightsOf(model);
    const bad = batchOf(4);
    bad.x[7] = Number.NaN;
    const r = classifierStep({ model, optimizer, clipGradNorm: 5 }, bad, 0.1);
    expect(r.finite).toBe(false);
    expect(maxAbsDiff(weightsOf(model), w0)).toBe(0);
    const ok = classifierStep({ model, optimizer, clipGradNorm: 5 }, batchOf(4), 0.1);
    expect(ok.finite).toBe(true);
    expect(maxAbsDiff(weightsOf(model), w0)).toBeGreaterThan(0);
    optimizer.dispose();
    model.dispose();
  }, 120_000);
});

describe('classifier training loop: stop and resume (the detector loop)', () => {
  const data = synthCrops(6, { cropSize: S, margin: 0.15 }, 9);
  const options = (out: string) => ({
    out,
    cropSize: S,
    margin: 0.15,
    depth: 18 as const,
    width: 0.0625,
    epochs: 2,
    batch: 8,
    lr: 2e-3,
    weightDecay: 1e-4,
    seed: 4,
    val: 0.2,
    test: 0.2,
    timeBudgetMin: 0,
    progress: false,
    say: () => {},
  });
  const finalWeights = async (out: string) => {
    const ck = await loadCheckpoint(listCheckpoints(runPaths(out))[0]!.dir);
    const w = weightsOf(ck.model);
    ck.model.dispose();
    return w;
  };

  it('a run stopped after 3 steps and resumed ends with the weights of the uninterrupted run', async () => {
    const straight = await trainClassifier(data, options(join(dir, 'straight')));
    expect(straight.stopped).toBe('finished');
    const cut = join(dir, 'cut');
    const first = await trainClassifier(data, { ...options(cut), maxSteps: 3 });
    expect(first.stopped).toBe('max-steps');
    expect(first.steps).toBe(3);
    // A second start into the same folder without --resume is refused.
    await expect(trainClassifier(data, options(cut))).rejects.toThrow(/--resume/);
    const resumed = await trainClassifier(data, { ...options(cut), resume: true });
    expect(resumed.stopped).toBe('finished');
    expect(resumed.steps).toBe(straight.steps);
    const a = await finalWeights(join(dir, 'straight'));
    const b = await finalWeights(cut);
    const scale = Math.max(...a.map((x) => Math.max(...x.map(Math.abs))));
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-3 * scale);
    const log = readFileSync(join(cut, 'log.jsonl'), 'utf8');
    expect(log).toMatch(/"event":"resume"/);
    // Evaluated and exported: the weights with the best validation balanced accuracy.
    expect(resumed.bestStep).toBeGreaterThan(0);
  }, 600_000);

  it('an aborted signal (Ctrl-C) stops after the current step with a checkpoint to resume from', async () => {
    const out = join(dir, 'signal');
    const controller = new AbortController();
    controller.abort();
    const r = await trainClassifier(data, { ...options(out), signal: controller.signal });
    expect(r.stopped).toBe('signal');
    expect(r.steps).toBe(1);
    expect(listCheckpoints(runPaths(out))[0]!.step).toBe(1);
  }, 300_000);
});
