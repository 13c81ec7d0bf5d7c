import { createHash } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '@bmc/data';
import type { RawDetections } from '../pipeline/postprocess.js';
import type { DetectResult } from '../pipeline/types.js';

/**
 * The tile store: a folder every worker and the submitter can read and write (the same path on
 * each machine: a local folder on one machine, a network share across several). Each job's result
 * is one file named by the job, written atomically (temporary name + rename), so a file either
 * holds a whole result or does not exist; a job that finds its file done writes nothing.
 *
 *   <store>/<slideId>/tile-<index>.json   one slide tile's detections (level pixels, core only)
 *   <store>/<slideId>/slide.tif           a large PNG/JPEG converted to a tiled TIFF for region reads
 *   <store>/images/<imageId>.json         one image's detections
 */

const SAMPLE = 1 << 20;

/**
 * A file's identity without reading all of it: its size and the first and last MiB (a slide's
 * TIFF header and directories, and image tiles that differ between any two scans). A slide copied
 * or moved keeps its identity (and its finished tiles); a rewritten one gets a new one.
 */
export async function fileIdentity(file: string): Promise<string> {
  const st = await stat(file);
  const h = createHash('sha256').update(String(st.size));
  const fd = await open(file, 'r');
  try {
    const head = Buffer.alloc(Math.min(SAMPLE, st.size));
    await fd.read(head, 0, head.length, 0);
    h.update(head);
    if (st.size > SAMPLE) {
      const tail = Buffer.alloc(Math.min(SAMPLE, st.size - SAMPLE));
      await fd.read(tail, 0, tail.length, st.size - tail.length);
      h.update(tail);
    }
  } finally {
    await fd.close();
  }
  return h.digest('hex');
}

/** sha256 of a model file: the queue name and part of every job id. */
export async function modelHash(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

/**
 * A job family's id: the hash of what decides its results (the input's identity, the model, the
 * tiling and post-processing options). Same slide, same model, same options: same id, so a rerun
 * finds the tiles already done.
 */
export function resultId(parts: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

export const slideDir = (store: string, slideId: string) => join(store, slideId);
export const tileFile = (store: string, slideId: string, index: number) =>
  join(store, slideId, `tile-${index}.json`);
export const imageFile = (store: string, imageId: string) => join(store, 'images', `${imageId}.json`);

/** Writes a tile's detections (float32 values survive JSON exactly: the shortest decimal round-trips). */
export async function writeTile(file: string, d: RawDetections): Promise<void> {
  await writeFileAtomic(
    file,
    JSON.stringify({
      boxes: Array.from(d.boxes),
      scores: Array.from(d.scores),
      classes: Array.from(d.classes),
    }),
  );
}

export async function readTile(file: string): Promise<RawDetections> {
  const j = JSON.parse(await readFile(file, 'utf8')) as {
    boxes: number[];
    scores: number[];
    classes: number[];
  };
  return {
    boxes: Float32Array.from(j.boxes),
    scores: Float32Array.from(j.scores),
    classes: Int32Array.from(j.classes),
  };
}

export async function writeImageResult(file: string, r: DetectResult): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(r));
}

export async function readImageResult(file: string): Promise<DetectResult> {
  return JSON.parse(await readFile(file, 'utf8')) as DetectResult;
}

/** Indices of the finished tiles in a slide's folder (one directory read, whatever the slide's size). */
export async function finishedTiles(store: string, slideId: string): Promise<Set<number>> {
  const names = await readdir(slideDir(store, slideId)).catch(() => [] as string[]);
  const done = new Set<number>();
  for (const n of names) {
    const m = /^tile-(\d+)\.json$/.exec(n);
    if (m) done.add(Number(m[1]));
  }
  return done;
}
