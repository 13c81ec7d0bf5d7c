import sharp from 'sharp';
import type { DatasetImage } from './dataset.js';
import { DataError } from './errors.js';
import { regularFileProblem } from './file-check.js';
import { imageSize, reason } from './image-io.js';
import type { Validator } from './validation.js';

/**
 * How far image files are checked: `header` reads the size from the header (fast, but a
 * truncated or corrupt body passes); `full` decodes every pixel, so a truncated JPEG fails here
 * rather than in the middle of training.
 */
export type ImageCheckMode = 'header' | 'full';

/**
 * Size of an image file after EXIF orientation, checked as `mode` says. The file must be a
 * regular file (a FIFO, socket, device or folder is refused without opening it). Throws a
 * {@link DataError} naming the file and the problem.
 */
export async function probeImage(
  file: string,
  mode: ImageCheckMode = 'header',
): Promise<{ width: number; height: number }> {
  const bad = await regularFileProblem(file);
  if (bad) throw new DataError(file, undefined, bad);
  const size = await imageSize(file);
  if (mode === 'full') {
    try {
      // Decodes every pixel. failOn 'truncated' with stats() let a truncated JPEG pass now and
      // then when the machine was loaded (about half of 12 concurrent runs); any decoder warning
      // as an error, read sequentially, caught it in every run, and BCCD and TXL-PBC stay clean.
      await sharp(file, { failOn: 'warning', sequentialRead: true }).raw().toBuffer();
    } catch (e) {
      // libvips names the decoder's warning ("premature end of JPEG image") only some of the time;
      // otherwise it says its failOn setting tripped, which tells a user nothing.
      const why = reason(e);
      throw new DataError(
        file,
        undefined,
        `cannot decode image: ${/failOn/.test(why) ? 'truncated or corrupt image data (the decoder warned)' : why}`,
      );
    }
  }
  return size;
}

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
 * Checks that every image exists, is a regular file, decodes (header, or fully with
 * `mode: 'full'`) and has the size the annotation claims.
 * Lenient mode drops images that fail. Issues are reported in image order, whatever order the
 * reads finish in, so reports are reproducible.
 */
export async function checkImageFiles(
  images: readonly DatasetImage[],
  v: Validator,
  where: (img: DatasetImage) => { file: string; where: string | undefined },
  mode: ImageCheckMode = 'header',
): Promise<DatasetImage[]> {
  // Full decodes hold a decoded image each: fewer at once keeps memory near one image per core.
  const found = await mapLimit(images, mode === 'full' ? 4 : 8, async (img) => {
    const bad = await regularFileProblem(img.file);
    if (bad === 'not found') return { kind: 'missing' as const };
    if (bad) return { kind: 'bad' as const, why: bad };
    try {
      return { kind: 'ok' as const, size: await probeImage(img.file, mode) };
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
