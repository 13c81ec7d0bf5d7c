import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The published model trains 640 px crops of large fields on tfjs-wasm (issue 15): before the lean step
// memory, one 512 px image already grew the wasm heap to ~3.3 GiB and 640 px aborted the module. One
// optimizer step through the CLI as a user runs it (a whole R50 step takes about a minute on 2 cores,
// so one step only: the time budget stops the run after it, with the final validation and checkpoint).
const here = dirname(fileURLToPath(import.meta.url));
const bmc = resolve(here, '../bin/bmc.mjs');

describe('thesis preset, 640 px crops of 1280x960 synthetic fields, wasm', () => {
  let runs: string;
  beforeAll(() => {
    runs = mkdtempSync(join(tmpdir(), 'bmc-thesis-640-'));
  });
  afterAll(() => {
    rmSync(runs, { recursive: true, force: true });
  });

  it('plans the step under 4 GiB, trains one step and writes a checkpoint', () => {
    const r = spawnSync(
      process.execPath,
      [
        bmc,
        'train',
        '--preset',
        'thesis',
        '--set',
        'data.imageSize=640',
        '--set',
        'data.sampling=crops',
        '--set',
        'data.synthetic.width=1280',
        '--set',
        'data.synthetic.height=960',
        '--set',
        'data.synthetic.train=2',
        '--set',
        'data.synthetic.val=1',
        '--set',
        'data.synthetic.test=1',
        '--set',
        'run.backend=wasm',
        '--batch-size',
        '1',
        '--epochs',
        '1',
        '--time-budget',
        '0.001',
        '--runs',
        runs,
        '--no-progress',
      ],
      { encoding: 'utf8', timeout: 570_000 },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out.slice(-3000)).toBe(0);
    const plan =
      /memory plan: a step needs about (\d+\.\d\d) GiB of the 4\.00 GiB tfjs-wasm heap \(1 image\(s\) of 640x640/.exec(
        out,
      );
    expect(plan, out.slice(-3000)).not.toBeNull();
    expect(Number(plan![1])).toBeLessThan(4);
    expect(out).not.toContain('memory access out of bounds');
    const [run] = readdirSync(runs);
    const steps = readFileSync(join(runs, run!, 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"event":"step"'))
      .map((l) => JSON.parse(l) as { loss: number });
    expect(steps.length).toBe(1);
    expect(Number.isFinite(steps[0]!.loss)).toBe(true);
    expect(existsSync(join(runs, run!, 'checkpoints'))).toBe(true);
    expect(readdirSync(join(runs, run!, 'checkpoints')).length).toBeGreaterThan(0);
  }, 600_000);
});
