import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { countParameters } from '@bmc/backbone';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateSplit, loadRun } from '../src/commands/pipeline.js';
import { loadConfig } from '../src/config/load.js';
import { machineCpu, measureModelCost } from '../src/report/model-cost.js';
import { writeRunReport } from '../src/report/run-report.js';
import { setUpEngine, train } from '../src/train/trainer.js';
import { smallSet } from './small-config.js';

describe('model cost (parameters, GFLOPs, FPS and where it was measured)', () => {
  it('reads the CPU model and its SIMD features', () => {
    const m = machineCpu('processor\t: 0\nflags\t\t: fpu sse2 sse4_2 avx avx2 fma bmi2\n');
    expect(m.cpu).toBe(cpus()[0]!.model.trim());
    expect(m.cpuFeatures).toEqual(['sse4_2', 'avx', 'avx2', 'fma']);
    expect(machineCpu('').cpuFeatures).toEqual([]);
  });

  it('one 3x3 conv, 3 -> 4 channels at 8x8: 112 parameters, 7,168 FLOPs (worked by hand)', async () => {
    await tf.setBackend('cpu');
    const input = tf.input({ shape: [8, 8, 3] });
    const conv = tf.layers
      .conv2d({ filters: 4, kernelSize: 3, padding: 'same' })
      .apply(input) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: conv });
    const before = tf.memory().numTensors;
    const c = await measureModelCost(model, [8, 8], { runs: 3 });
    expect(tf.memory().numTensors).toBe(before);
    // Weights 3 x 3 x 3 x 4 = 108, biases 4. mmcv: one multiply-add per kernel tap and output
    // element, 8 x 8 x 4 x 27 = 6,912, plus one add per output element for the bias, 256.
    expect(c.trainableParams).toBe(112);
    expect(c.gflops * 1e9).toBeCloseTo(7168, 6);
    expect(c.fps).toBeGreaterThan(0);
    expect(c.backend).toBe('cpu');
    model.dispose();
  });
});

describe("a tiny run's report holds the Table 1.3 layout", () => {
  const runs = mkdtempSync(join(tmpdir(), 'bmc-report-cost-'));
  afterAll(() => rmSync(runs, { recursive: true, force: true }));

  it('this run: AP50 / AP75 / AP90, FPS, Params, GFLOPs; the machine and backend; the published rows', async () => {
    const config = loadConfig({
      preset: 'tiny',
      set: [...smallSet(128, 8, 4), 'optim.epochs=1', 'run.evalEvery=0'],
    });
    const backend = await setUpEngine(config.run, () => {});
    const trained = await train(config, { runsDir: runs, log: () => {}, progress: false });
    trained.detector.dispose();
    const run = await loadRun(trained.paths.root, 'last');
    const ev = await evaluateSplit(run, run.splits.test);
    const before = tf.memory().numTensors;
    const path = await writeRunReport({
      paths: run.paths,
      config: run.config,
      test: ev,
      testSplit: run.splits.test,
      backend: backend.name,
      peakRssMb: 1,
      samples: 1,
      model: run.detector.model,
    });
    expect(tf.memory().numTensors).toBe(before);
    const md = readFileSync(path, 'utf8');
    const row = md.split('\n').find((l) => l.startsWith(`| ${run.config.name} (this run) |`));
    expect(row, md).toBeDefined();
    const cells = row!.split('|').map((s) => s.trim());
    // | name | AP50 | AP75 | AP90 | FPS | Params (M) | GFLOPs |
    expect(Number(cells[2])).toBeCloseTo(ev.result.stats[1]!, 4);
    expect(Number(cells[5])).toBeGreaterThan(0);
    // Parameters that train, as @bmc/backbone's PyTorch-convention counter (a second counter) gives them.
    expect(Number(cells[6])).toBeCloseTo(countParameters(run.detector.model).trainable / 1e6, 2);
    expect(Number(cells[7])).toBeGreaterThan(0);
    expect(md).toContain('| published: thesis model | 0.9864 | 0.9668 | 0.6305 | 27.2 | 37.89 | 140.94 |');
    expect(md).toContain(`at 128x128 on the ${tf.getBackend()} backend, ${cpus()[0]!.model.trim()}`);
    const json = JSON.parse(readFileSync(join(run.paths.report, 'model-cost.json'), 'utf8'));
    expect(json.inputSize).toEqual([128, 128]);
    expect(json.backend).toBe(tf.getBackend());
    run.detector.dispose();
  }, 300_000);
});
