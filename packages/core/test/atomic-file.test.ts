import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempSibling, writeDirAtomic, writeFileAtomic } from '../src/node.js';

const dirs: string[] = [];
function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'bmc-atomic-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('writeFileAtomic (@bmc/core/node)', () => {
  it('writes text and bytes, creating parent folders, and replaces an existing file', () => {
    const d = scratch();
    const f = join(d, 'a', 'b', 'out.json');
    writeFileAtomic(f, '{"v":1}');
    expect(readFileSync(f, 'utf8')).toBe('{"v":1}');
    writeFileAtomic(f, new Uint8Array([104, 105]));
    expect(readFileSync(f, 'utf8')).toBe('hi');
    // No temporary sibling is left behind.
    expect(readdirSync(join(d, 'a', 'b'))).toEqual(['out.json']);
  });

  it('leaves what was there and no temporary file when the rename fails', () => {
    const d = scratch();
    // A non-empty folder where the file should go: the rename fails after the temporary file was written.
    const blocked = join(d, 'blocked');
    mkdirSync(join(blocked, 'inside'), { recursive: true });
    expect(() => writeFileAtomic(blocked, 'new')).toThrow();
    expect(readdirSync(d)).toEqual(['blocked']);
    expect(readdirSync(blocked)).toEqual(['inside']);
  });

  it('temporary names are hidden siblings in the same folder, unique per call', () => {
    const a = tempSibling('/x/y/model.onnx');
    const b = tempSibling('/x/y/model.onnx');
    expect(a).toMatch(/^\/x\/y\/\.model\.onnx\.tmp-\d+-[0-9a-f]{8}$/);
    expect(a).not.toBe(b);
  });
});

describe('writeDirAtomic (@bmc/core/node)', () => {
  it('replaces a folder as a whole, and keeps the old one when filling fails', async () => {
    const d = scratch();
    const target = join(d, 'ckpt');
    await writeDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'w.bin'), 'v1'));
    expect(readFileSync(join(target, 'w.bin'), 'utf8')).toBe('v1');
    await writeDirAtomic(target, (tmp) => writeFileSync(join(tmp, 'x.bin'), 'v2'));
    expect(readdirSync(target)).toEqual(['x.bin']);
    await expect(
      writeDirAtomic(target, (tmp) => {
        writeFileSync(join(tmp, 'half.bin'), 'partial');
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(readdirSync(target)).toEqual(['x.bin']);
    expect(readdirSync(d)).toEqual(['ckpt']);
  });
});
