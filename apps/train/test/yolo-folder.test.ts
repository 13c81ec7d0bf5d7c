import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { detectFormat } from '../src/commands/data.js';
import { readJsonl } from '../src/run/jsonl-log.js';

const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const SHARED = (() => {
  const p = join(import.meta.dirname, '..', '..', '..', '..', 'shared', 'data');
  return process.env.BMC_SHARED_DATA ?? (existsSync(p) ? p : undefined);
})();
const TXL = SHARED && join(SHARED, 'txl-pbc');
const bmc = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A Roboflow-style folder (`train|valid[|test]/{images,labels}`, no data.yaml) of TXL-PBC symlinks. */
function roboflow(counts: Record<'train' | 'valid' | 'test', number>): string {
  const root = mkdtempSync(join(tmpdir(), 'bmc-yolo-folder-'));
  dirs.push(root);
  const from = { train: 'train', valid: 'val', test: 'test' } as const;
  for (const [split, n] of Object.entries(counts) as Array<[keyof typeof from, number]>) {
    if (n === 0) continue;
    mkdirSync(join(root, split, 'images'), { recursive: true });
    mkdirSync(join(root, split, 'labels'), { recursive: true });
    const names = readdirSync(join(TXL!, 'images', from[split]))
      .sort()
      .slice(0, n);
    for (const name of names) {
      const stem = basename(name, '.jpg');
      symlinkSync(join(TXL!, 'images', from[split], name), join(root, split, 'images', name));
      symlinkSync(
        join(TXL!, 'labels', from[split], `${stem}.txt`),
        join(root, split, 'labels', `${stem}.txt`),
      );
    }
  }
  return root;
}

if (!TXL) console.warn('YOLO folder CLI tests skipped: ../shared/data is absent');
describe.skipIf(!TXL)('bmc with a YOLO folder as Roboflow exports it (no data.yaml)', () => {
  it('is detected as YOLO; bmc data check reads every split and warns when classes are named by id', () => {
    const root = roboflow({ train: 4, valid: 2, test: 2 });
    expect(detectFormat(root)).toBe('yolo');
    const check = bmc('data', 'check', root, '--fast');
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/no problems in 8 images/);
    expect(check.stderr).toMatch(/warning: .*no data\.yaml, classes\.txt or obj\.names found.*named by id/);
    writeFileSync(join(root, 'obj.names'), 'WBC\nRBC\nPlatelets\n');
    const stats = bmc('data', 'stats', root, '--split', 'valid');
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toMatch(/: 2 images, \d+ boxes/);
    expect(stats.stdout).toMatch(/RBC: \d+/);
    expect(stats.stderr).not.toMatch(/warning/);
  });

  it('a plain folder is refused with the layouts it looked for (exit 2)', () => {
    const root = mkdtempSync(join(tmpdir(), 'bmc-not-a-dataset-'));
    dirs.push(root);
    const r = bmc('data', 'check', root);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /neither a VOC folder \(Annotations\/\) nor a YOLO folder \(data\.yaml, or train\/valid\/test folders/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('bmc train --data <folder> trains on train, validates on valid, tests on valid when there is no test', () => {
    const root = roboflow({ train: 4, valid: 2, test: 0 });
    writeFileSync(join(root, 'classes.txt'), 'WBC\nRBC\nPlatelets\n');
    const runs = mkdtempSync(join(tmpdir(), 'bmc-yolo-runs-'));
    dirs.push(runs);
    const r = bmc(
      'train',
      '--preset',
      'tiny',
      '--data',
      root,
      '--runs',
      runs,
      '--no-progress',
      '--epochs',
      '2',
      '--batch-size',
      '2',
      '--set',
      'data.imageSize=128',
      '--set',
      'optim.warmupIters=2',
      '--set',
      'data.classAgnostic=false',
    );
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stderr).toMatch(/has no "test" split: test figures .* use "val"/);
    const run = /run folder: (.+)/.exec(r.stdout)![1]!.trim();
    const log = readJsonl(readFileSync(join(run, 'log.jsonl'), 'utf8'));
    expect(log.find((e) => e.event === 'start')!.classes).toEqual(['WBC', 'RBC', 'Platelets']);
    expect(log.filter((e) => e.event === 'step').length).toBe(4); // 4 images / batch 2 x 2 epochs
    expect(log.filter((e) => e.event === 'eval').length).toBeGreaterThan(0);
  }, 600_000);
});
