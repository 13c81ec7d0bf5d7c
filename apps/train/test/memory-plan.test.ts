import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { saveCheckpoint } from '@bmc/export';
import { buildDetector } from '@bmc/heads-iou';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { checkpointDir, runPaths } from '../src/run/run-dir.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { ESTIMATE_TOLERANCE, estimateStepHeap, fitsWasmHeap } from '../src/train/memory-plan.js';
import type { TrainSession } from '../src/train/setup.js';
import { initialTrainState, TrainingError } from '../src/train/state.js';
import { setUpEngine } from '../src/train/trainer.js';
import { explainWasmAbort } from '../src/train/wasm-abort.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const bench = resolve(here, '../bench/memory.bench.mjs');
const bmc = resolve(here, '../bin/bmc.mjs');
const bccd = resolve(root, '../shared/data/bccd');

/** The wasm heap after one lean training step of `preset` at `side`, one image, in a fresh process. */
function measureHeap(preset: string, side: number) {
  const r = spawnSync(process.execPath, [bench, '--child', 'lean', preset, String(side), '1'], {
    encoding: 'utf8',
    timeout: 180_000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`memory bench child failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(line.slice(7)) as { heapAfterBytes: number; peakTensorBytes: number };
}

/** Relative error of the estimate's peak and heap against a measurement. */
function errors(
  e: { peakBytes: number; heapBytes: number },
  m: { peakTensorBytes: number; heapAfterBytes: number },
) {
  return {
    peak: Math.abs(e.peakBytes - m.peakTensorBytes) / m.peakTensorBytes,
    heap: Math.abs(e.heapBytes - m.heapAfterBytes) / m.heapAfterBytes,
  };
}

function estimate(preset: string, side: number) {
  const config = loadConfig({ preset });
  const detector = buildDetector(toDetectorConfig(config, 1));
  const e = estimateStepHeap(detector.model, {
    side,
    imagesPerPass: 1,
    optimizerSlots: config.optim.type === 'adamw' ? 2 : 1,
  });
  detector.dispose();
  return e;
}

describe('memory plan: the estimate against measured wasm heaps', () => {
  // Sizes other than the calibration sizes (256 and 384 for tiny): the check is out of sample.
  for (const side of [224, 320]) {
    it(`tiny preset at ${side} px, measured in a fresh process`, () => {
      const measured = measureHeap('tiny', side);
      const e = estimate('tiny', side);
      const err = errors(e, measured);
      const what = `estimate ${JSON.stringify(e)} vs measured ${JSON.stringify(measured)}`;
      expect(err.peak, what).toBeLessThanOrEqual(ESTIMATE_TOLERANCE);
      // The heap grows in 20% steps: its size is the peak's step, within one step.
      expect(err.heap, what).toBeLessThanOrEqual(0.25);
    }, 200_000);
  }

  it('thesis preset: the recorded bench measurements (bench/measured/train-memory-thesis*.json)', () => {
    const dir = resolve(here, '../bench/measured');
    const results = readdirSync(dir)
      .filter((f) => /^train-memory-thesis.*\.json$/.test(f))
      .flatMap(
        (f) =>
          (
            JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
              results: {
                mode: string;
                preset: string;
                size: number;
                heapAfterBytes: number;
                peakTensorBytes: number;
              }[];
            }
          ).results,
      );
    const lean = results.filter((r) => r.mode === 'lean' && r.preset === 'thesis' && r.heapAfterBytes);
    expect(lean.map((r) => r.size).sort((a, b) => a - b)).toEqual([256, 512, 800]);
    const config = loadConfig({ preset: 'thesis' });
    const detector = buildDetector(toDetectorConfig(config, 1));
    for (const r of lean) {
      const e = estimateStepHeap(detector.model, { side: r.size, imagesPerPass: 1, optimizerSlots: 1 });
      const err = errors(e, r);
      const what = `thesis ${r.size}: estimate ${JSON.stringify(e)} vs measured ${JSON.stringify(r)}`;
      expect(err.peak, what).toBeLessThanOrEqual(ESTIMATE_TOLERANCE);
      expect(err.heap, what).toBeLessThanOrEqual(0.25);
    }
    detector.dispose();
  });
});

describe('memory plan through the CLI', () => {
  let runs: string;
  beforeAll(() => {
    runs = mkdtempSync(join(tmpdir(), 'bmc-memory-plan-'));
  });
  afterAll(() => {
    rmSync(runs, { recursive: true, force: true });
  });

  it.skipIf(!existsSync(bccd))(
    'refuses the thesis preset at 1280 px on BCCD with exit 2 before any step, naming the estimate, the limit and the ways out',
    () => {
      const r = spawnSync(
        process.execPath,
        [
          bmc,
          'train',
          '--preset',
          'thesis',
          '--data',
          bccd,
          '--set',
          'data.imageSize=1280',
          '--runs',
          runs,
          '--no-progress',
        ],
        { encoding: 'utf8', timeout: 120_000, cwd: root },
      );
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/memory plan: one training step needs about \d+\.\d\d GiB of tfjs-wasm heap/);
      expect(r.stderr).toContain('4.00 GiB limit');
      expect(r.stderr).toMatch(/--set data\.imageSize=\d+ or less/);
      expect(r.stderr).toContain('data.sampling=crops');
      expect(r.stderr).toContain('--preset tiny');
      expect(r.stderr).not.toContain('memory access out of bounds');
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      // Refused before the first step: no checkpoint anywhere.
      for (const run of readdirSync(runs)) {
        const ckpt = join(runs, run, 'checkpoints');
        expect(existsSync(ckpt) ? readdirSync(ckpt) : []).toEqual([]);
      }
      // The largest side it proposes fits by its own estimate, and 1280 did not.
      const side = Number(/data\.imageSize=(\d+) or less/.exec(r.stderr)![1]);
      expect(fitsWasmHeap(estimate('thesis', side))).toBe(true);
      expect(fitsWasmHeap(estimate('thesis', 1280))).toBe(false);
    },
    150_000,
  );
});

describe('a wasm abort during training', () => {
  let dir: string;
  beforeAll(async () => {
    await setUpEngine(loadConfig({ preset: 'tiny' }).run, () => {});
    dir = mkdtempSync(join(tmpdir(), 'bmc-abort-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function session(rootDir: string, step: number): TrainSession {
    const config = loadConfig({ preset: 'tiny' });
    const detector = buildDetector(toDetectorConfig(config, 1));
    const logged: unknown[] = [];
    return {
      config,
      paths: runPaths(rootDir),
      detector,
      backend: { name: 'wasm' },
      state: { ...initialTrainState(), step },
      log: { write: (e: unknown) => logged.push(e) },
      say: () => {},
    } as unknown as TrainSession;
  }

  it('is reported with the step and the intact checkpoint, not as "memory access out of bounds" (exit 1)', async () => {
    const s = session(join(dir, 'with-checkpoint'), 7);
    const ckpt = checkpointDir(s.paths, 5);
    await saveCheckpoint(ckpt, { model: s.detector.model, state: { step: 5, epoch: 0 } });
    const out = explainWasmAbort(new WebAssembly.RuntimeError('memory access out of bounds'), s);
    expect(out).toBeInstanceOf(TrainingError);
    const msg = (out as Error).message;
    expect(msg).not.toContain('memory access out of bounds');
    expect(msg).toContain('ran out of memory and aborted at step 8');
    expect(msg).toContain(`The newest intact checkpoint is ${ckpt}`);
    expect(msg).toContain(`bmc train --resume ${s.paths.root}`);
    expect((out as { kind?: string }).kind).toBeUndefined(); // exit code 1 (failed work), not 2
    s.detector.dispose();
  });

  it('says when nothing was saved yet, and leaves other errors alone', () => {
    const s = session(join(dir, 'empty'), 0);
    const msg = (explainWasmAbort(new WebAssembly.RuntimeError('memory access out of bounds'), s) as Error)
      .message;
    expect(msg).toContain('No checkpoint had been written yet');
    const other = new Error('disk full');
    expect(explainWasmAbort(other, s)).toBe(other);
    s.detector.dispose();
  });
});
