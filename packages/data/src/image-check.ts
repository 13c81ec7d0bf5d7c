import { access } from 'node:fs/promises';
import type { DatasetImage } from './dataset.js';
import { DataError } from './errors.js';
import { imageSize } from './image-io.js';
import type { Validator } from './validation.js';

/** Runs `fn` over `items` with at most `limit` in flight (sharp works in libuv's thread pool). */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (x: T, i: number) => Promise<R>,
) {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Checks that every image exists, decodes (header) and has the size the annotation claims.
 * Lenient mode drops images that fail. Issues are reported in image order, whatever order the
 * reads finish in, so reports are reproducible.
 */
export async function checkImageFiles(
  images: readonly DatasetImage[],
  v: Validator,
  where: (img: DatasetImage) => { file: string; where: string | undefined },
): Promise<DatasetImage[]> {
  const found = await mapLimit(images, 8, async (img) => {
    try {
      await access(img.file);
    } catch {
      return { kind: 'missing' as const };
    }
    try {
      return { kind: 'ok' as const, size: await imageSize(img.file) };
    } catch (e) {
      return { kind: 'bad' as const, why: e instanceof DataError ? e.problem : String(e) };
    }
  });
  const kept: DatasetImage[] = [];
  images.forEach((img, i) => {
    const r = found[i]!;
    const loc = where(img);
    if (r.kind === 'missing') {
      v.problem(loc.file, loc.where, `image file not found: ${img.file}`, 'dropped-image');
    } else if (r.kind === 'bad') {
      v.problem(loc.file, loc.where, `image ${img.file} is not a readable image (${r.why})`, 'dropped-image');
    } else if (r.size.width !== img.width || r.size.height !== img.height) {
      v.problem(
        loc.file,
        loc.where,
        `annotation says ${img.width}x${img.height} but image ${img.file} is ${r.size.width}x${r.size.height}`,
        'dropped-image',
      );
    } else {
      kept.push(img);
    }
  });
  return kept;
}
