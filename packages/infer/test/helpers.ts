import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng, generateSmear } from '@bmc/data';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const PACKAGE_ROOT = join(HERE, '..');
/** Written by tooling/infer_tiny_detector.py (hand-designed, untrained; see that script). */
export const TINY_MODEL = join(HERE, 'fixtures', 'tiny-detector.onnx');
export const VIEWER_DIR = join(PACKAGE_ROOT, 'dist', 'viewer');
export const viewerBuilt = existsSync(join(VIEWER_DIR, 'index.html'));

/** A synthetic smear (from @bmc/data's generator) as PNG bytes, with its ground-truth cell count. */
export async function smearPng(
  seed: number,
  width = 320,
  height = 320,
): Promise<{ png: Buffer; cells: number }> {
  const s = generateSmear(seed, 0, { width, height });
  return { png: await encodePng(s.image), cells: s.labels.length };
}

export async function writeSmear(
  dir: string,
  name: string,
  seed: number,
  width = 320,
  height = 320,
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, name);
  await writeFile(file, (await smearPng(seed, width, height)).png);
  return file;
}

/** Max |a - b| over matched boxes (same order). */
export function maxBoxDiff(a: ReadonlyArray<{ box: number[] }>, b: ReadonlyArray<{ box: number[] }>): number {
  let m = 0;
  a.forEach((d, i) => {
    d.box.forEach((v, k) => {
      m = Math.max(m, Math.abs(v - b[i]!.box[k]!));
    });
  });
  return m;
}
