import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TINY_MODEL, writeSmear } from './helpers.js';

// The standalone binary, as a user runs it: exit code by kind of error (issue 22), no stack trace.
const BIN = new URL('../bin/bmc-infer.mjs', import.meta.url).pathname;
const run = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, BMC_DEBUG: '' },
  });
  return { code: r.status, all: r.stdout + r.stderr };
};
const dir = mkdtempSync(join(tmpdir(), 'bmc-infer-exit-'));

describe('bmc-infer exit codes', () => {
  it('2 for option errors (commander used to exit 1)', () => {
    const r = run('detect', '-m', TINY_MODEL, dir, '--bogus');
    expect(r.code).toBe(2);
    expect(r.all).toMatch(/unknown option '--bogus'/);
    expect(run('detect', '-m', TINY_MODEL, dir, '--resize', '100000').code).toBe(2);
  });

  it('2 for bad input naming the file: a model that is not one, a missing input', async () => {
    const notModel = join(dir, 'model.onnx');
    writeFileSync(notModel, 'not an onnx file');
    const image = await writeSmear(join(dir, 'images'), 'a.png', 1, 64, 64);
    const bad = run('detect', '-m', notModel, image, '-o', join(dir, 'out'));
    expect(bad.code).toBe(2);
    expect(bad.all).toMatch(/model\.onnx/);
    const missing = run('detect', '-m', TINY_MODEL, join(dir, 'absent.png'));
    expect(missing.code).toBe(2);
    expect(missing.all).toMatch(/absent\.png: no such file or folder/);
    expect(bad.all + missing.all).not.toMatch(/\n\s+at /);
  });

  it('0 for --help and --version', () => {
    expect(run('--help').code).toBe(0);
    expect(run('--version').code).toBe(0);
  });
});
