import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restoreCheckpoint } from '@bmc/export';
import { buildDetector } from '@bmc/heads-iou';
import { checkpointDir, modelPath } from '@bmc/models';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { resolveModelName } from '../src/train/model-names.js';

// @bmc/models' blood-smear detector, as the bmc command uses it.
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const REPO = new URL('../../../', import.meta.url).pathname;
const TXL = join(REPO, '../shared/data/txl-pbc/images/test');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the shipped blood-smear model', () => {
  it.skipIf(!existsSync(TXL))('bmc detect without -m runs it on real smears and says so', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bmc-shipped-'));
    dirs.push(dir);
    const images = readdirSync(TXL).sort().slice(0, 2);
    const r = spawnSync(
      process.execPath,
      [BIN, 'detect', ...images.map((f) => join(TXL, f)), '--out', join(dir, 'out'), '--no-progress'],
      { encoding: 'utf8', timeout: 240_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`model: blood-smear from @bmc/models (no -m given): ${modelPath()}`);
    const results = JSON.parse(readFileSync(join(dir, 'out', 'results.json'), 'utf8')) as unknown[];
    expect(results.length).toBeGreaterThan(0);
  });

  it('--init blood-smear resolves to its checkpoint, which restores into the model blood-smear.yaml builds', async () => {
    expect(await resolveModelName('blood-smear')).toBe(checkpointDir());
    await expect(resolveModelName('no-such-model')).rejects.toThrow(/known: blood-smear/);
    const config = loadConfig({ file: join(REPO, 'packages/models/train/blood-smear.yaml') });
    const detector = buildDetector(toDetectorConfig(config, 1));
    try {
      await expect(restoreCheckpoint(checkpointDir(), detector.model)).resolves.toBeDefined();
    } finally {
      detector.model.dispose();
    }
  });
});
