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

/**
 * A finished slide job as `bmc serve --queue --deep-zoom` leaves it, without Redis workers: the
 * outputs of `bmc detect --deep-zoom` (the same code the service runs) in `<jobsDir>/jobs/<id>/`
 * and the job's record beside them. Returns the slide's summary.
 */
export async function writeFinishedSlideJob(jobsDir: string, id: string, slide: string, model: string) {
  const { detectCommand } = await import('../src/detect-command.js');
  const out = join(jobsDir, 'jobs', id);
  const res = await detectCommand({
    inputs: [slide],
    model,
    out,
    deepZoom: true,
    annotate: false,
    progress: false,
    threads: 1,
    log: () => {},
  });
  const p = res.processed[0]!;
  const glass = p.slide?.deepZoom?.glass;
  const record = {
    id,
    file: slide,
    status: 'done',
    submittedAt: new Date().toISOString(),
    progress: { done: p.tiles, total: p.tiles },
    result: {
      width: p.width,
      height: p.height,
      count: p.count,
      counts: p.counts,
      tiles: p.tiles,
      deepZoom: glass ? { glass } : {},
    },
  };
  await writeFile(join(out, 'job.json'), JSON.stringify(record));
  return { summary: p, dir: out };
}
