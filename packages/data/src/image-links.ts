import { copyFile, lstat, mkdir, rename, rm, symlink } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import type { DatasetImage } from './dataset.js';
import { DataError } from './errors.js';

/**
 * Puts `src` at `dest` as a symbolic link (no copy of a large smear), or a copy where links are not
 * possible (some network and Windows file systems). An existing `dest` is replaced, through a
 * temporary name so a reader never finds it missing.
 */
export async function linkImage(src: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const tmp = join(dirname(dest), `.${basename(dest)}.${process.pid}.tmp`);
  await rm(tmp, { force: true });
  try {
    await symlink(resolve(src), tmp);
  } catch {
    await copyFile(src, tmp);
  }
  await rename(tmp, dest);
}

/** True when `path` exists (as a file, folder or link). */
export async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/**
 * The file-name stem of each image, which the per-image formats (VOC, YOLO) name their files by:
 * two images with one stem would overwrite each other's labels, so that is refused.
 */
export function uniqueStems(images: readonly DatasetImage[], what: string): string[] {
  const seen = new Map<string, string>();
  return images.map((im) => {
    const name = basename(im.file);
    const stem = name.slice(0, name.length - extname(name).length);
    const other = seen.get(stem);
    if (other !== undefined)
      throw new DataError(
        im.file,
        undefined,
        `has the same file name stem "${stem}" as ${other}; ${what} names label files by stem, so rename one`,
      );
    seen.set(stem, im.file);
    return stem;
  });
}
