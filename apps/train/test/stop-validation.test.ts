import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { setUpEngine, train } from '../src/train/trainer.js';
import { smallSet } from './small-config.js';

// Issue: a run that stopped on its time budget kept a `best/` from an older validation (test AP 0.367
// against 0.534 for the final weights). Whatever ends a run early, the final weights are validated and
// `best/` is the best of all validations, including that last one.
const runs = mkdtempSync(join(tmpdir(), 'bmc-stop-'));
const config = loadConfig({
  preset: 'tiny',
  set: [...smallSet(64, 8, 2), 'optim.epochs=5', 'run.evalEvery=1'],
});
const quiet = () => {};

beforeAll(async () => {
  await setUpEngine(config.run, quiet);
});
afterAll(() => rmSync(runs, { recursive: true, force: true }));

function events(root: string): Array<Record<string, unknown>> {
  return readFileSync(join(root, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

describe('a run that stops early', () => {
  const cases = [
    { why: 'time-budget', budget: 1e-6, abort: false },
    { why: 'signal', budget: 0, abort: true },
  ] as const;
  for (const c of cases) {
    it(`validates its final weights (${c.why}) and best/ is the best validation`, async () => {
      const controller = new AbortController();
      if (c.abort) controller.abort();
      const cfg = { ...config, run: { ...config.run, timeBudgetMin: c.budget } };
      const out = await train(cfg, { runsDir: runs, log: quiet, progress: false, signal: controller.signal });
      expect(out.stopped).toBe(c.why);
      // Stopped after its first step, mid-epoch: no epoch-end validation ran.
      expect(out.state.step).toBe(1);
      const log = events(out.paths.root);
      const evals = log.filter((e) => e.event === 'eval');
      expect(evals.map((e) => e.step)).toEqual([1]);
      expect(out.state.bestStep).toBe(1);
      expect(log.find((e) => e.event === 'stop')).toMatchObject({ reason: c.why, bestStep: 1 });
      const best = JSON.parse(readFileSync(join(out.paths.best, 'state.json'), 'utf8')) as { step: number };
      expect(best.step).toBe(1);
    });
  }
});
