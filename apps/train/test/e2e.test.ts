import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAssigner } from '@bmc/assigners';
import { readBmcMetadata } from '@bmc/export';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { evaluateSplit, exportRunOnnx, loadRun } from '../src/commands/pipeline.js';
import { loadConfig } from '../src/config/load.js';
import { readJsonl } from '../src/run/jsonl-log.js';
import { listCheckpoints } from '../src/run/run-dir.js';
import { loadSplits, trainLoader } from '../src/train/data.js';
import { lossOptions, toDetectorConfig } from '../src/train/detector.js';
import { createOptimizer } from '../src/train/optimizer.js';
import { trainStep } from '../src/train/step.js';
import { setUpEngine, train } from '../src/train/trainer.js';
import { smallSet } from './small-config.js';

// A model and dataset small enough for CI: 128 px synthetic smears, no augmentation noise.
const SMALL = [...smallSet(128, 8, 4), 'optim.warmupIters=3', 'optim.lr=0.001', 'run.evalEvery=0'];
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const steps = (dir: string) =>
  readJsonl(readFileSync(join(dir, 'log.jsonl'), 'utf8')).filter((e) => e.event === 'step');

describe('training end to end (tiny model, synthetic smears)', () => {
  it('tf.memory().numTensors is flat across training steps (every assigner)', async () => {
    const config = loadConfig({ preset: 'tiny', set: [...SMALL, 'data.imageSize=64'] });
    await setUpEngine(config.run, () => {});
    const splits = await loadSplits(config);
    const detector = buildDetector(toDetectorConfig(config, 1));
    const loader = trainLoader(config, splits.train, 0);
    const batches = [];
    for await (const b of loader.epoch(0)) batches.push(b);
    for (const type of ['maxiou', 'atss', 'paa', 'ota'] as const) {
      const ctx = {
        model: detector.model,
        assigner: createAssigner({ type }),
        anchors: detector.anchorsFor(64, 64),
        strides: detector.strides,
        numClasses: 1,
        loss: lossOptions(config),
        optimizer: createOptimizer(config),
        clipGradNorm: 10,
      };
      trainStep(ctx, batches[0]!, 0.001); // creates the optimizer's buffers
      const counts: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = trainStep(ctx, batches[i % batches.length]!, 0.001);
        expect(r.finite).toBe(true);
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts).size, `${type}: ${counts}`).toBe(1);
      ctx.optimizer.dispose();
    }
    detector.dispose();
  }, 300_000);

  it('loss falls, checkpoints round-trip, resume continues at the right step, eval and export run', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'bmc-e2e-'));
    // SGD here: this test is about the loop's mechanics, and SGD's loss falls smoothly where the tiny
    // preset's AdamW can spike on 8 images (tfjs initialisers are unseeded, so runs differ).
    const config = loadConfig({
      preset: 'tiny',
      set: [...SMALL, 'optim.epochs=5', 'optim.steps=[100]', 'optim.type=sgd', 'optim.lr=0.05'],
    });
    const quiet = () => {};
    // 2 steps per epoch; stop after 6 to resume later.
    const first = await train(config, { runsDir: runs, log: quiet, progress: false, maxSteps: 6 });
    expect(first.stopped).toBe('max-steps');
    expect(first.state.step).toBe(6);
    first.detector.dispose();
    const numTensors = tf.memory().numTensors;

    const resumed = await train(config, { resume: first.paths.root, log: quiet, progress: false });
    expect(resumed.stopped).toBe('finished');
    expect(resumed.state.step).toBe(10); // 5 epochs x 2 steps: the resume took exactly the 4 missing steps
    const log = readJsonl(readFileSync(first.paths.log, 'utf8'));
    const resume = log.find((e) => e.event === 'resume')!;
    expect(resume.step).toBe(6);
    const stepNumbers = steps(first.paths.root).map((e) => e.step);
    expect(stepNumbers).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    // Same fixed batches every epoch: the loss must fall clearly over 10 steps.
    const losses = steps(first.paths.root).map((e) => e.loss as number);
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    expect(median(losses.slice(7)), `losses ${losses.map((l) => l.toFixed(3))}`).toBeLessThan(
      median(losses.slice(0, 3)) * 0.95,
    );

    // The best checkpoint round-trips into a fresh model with identical outputs.
    const run = await loadRun(first.paths.root, 'last');
    const x = tf.randomNormal([1, 128, 128, 3], 0, 1, 'float32', 7);
    const a = resumed.detector.model.predict(x) as tf.Tensor[];
    const b = run.detector.model.predict(x) as tf.Tensor[];
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a[0]!, b[0]!))));
    expect(diff.dataSync()[0]).toBeLessThan(1e-5);
    diff.dispose();
    tf.dispose([x, ...a, ...b]);

    const ev = await evaluateSplit(run, run.splits.test);
    expect(ev.result.stats.length).toBe(12);
    const onnx = join(first.paths.root, 'model.onnx');
    exportRunOnnx(run, onnx);
    const meta = readBmcMetadata(new Uint8Array(readFileSync(onnx)));
    expect(meta.classNames).toEqual(['cell']);
    expect(meta.scoreMode).toBe('sqrt(cls*iou)');
    run.detector.dispose();
    resumed.detector.dispose();
    // Both models gone: nothing else the training, evaluation or export made is left behind.
    expect(tf.memory().numTensors).toBe(numTensors);
  }, 600_000);

  it('a training process killed with SIGKILL resumes from its last checkpoint and finishes', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'bmc-kill-'));
    const cfg = join(runs, 'config.yaml');
    writeFileSync(cfg, `preset: tiny\nname: killed\n`);
    const args = ['train', '--config', cfg, '--runs', runs, '--no-progress', '--epochs', '4'];
    for (const s of [...SMALL, 'run.checkpointEvery=2']) args.push('--set', s);
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    // Kill it as soon as a checkpoint past step 2 exists.
    const runDir = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /"event":"checkpoint","step":(\d+)/;
        for (const dir of [runs]) {
          const folders = existsSync(dir) ? runFolders(dir) : [];
          for (const f of folders) {
            const log = join(f, 'log.jsonl');
            if (existsSync(log) && m.test(readFileSync(log, 'utf8'))) {
              clearInterval(timer);
              child.kill('SIGKILL');
              resolve(f);
            }
          }
        }
      }, 100);
      child.on('exit', () => {
        clearInterval(timer);
        reject(new Error(`training ended before it could be killed:\n${out}`));
      });
    });
    await new Promise((r) => child.once('exit', r));
    const lastGood = listCheckpoints({ checkpoints: join(runDir, 'checkpoints') } as never)[0]!.step;
    expect(lastGood).toBeGreaterThanOrEqual(2);

    const resumed = spawn(process.execPath, [BIN, 'train', '--resume', runDir, '--no-progress'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    resumed.stdout.on('data', (d) => (text += d));
    resumed.stderr.on('data', (d) => (text += d));
    const code = await new Promise((r) => resumed.once('exit', r));
    expect(code, text).toBe(0);
    expect(text).toMatch(new RegExp(`resumed from .*step ${lastGood}`));
    const stop = readJsonl(readFileSync(join(runDir, 'log.jsonl'), 'utf8'))
      .filter((e) => e.event === 'stop')
      .pop()!;
    expect(stop).toMatchObject({ reason: 'finished', step: 8 });
  }, 600_000);
});

function runFolders(dir: string): string[] {
  return readdirSync(dir)
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isDirectory());
}
