import { stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';

/** A file-system error as a user reads it; a symlink loop is not "not found". */
export function fsErrorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'not found';
    case 'ELOOP':
      return 'symlink loop (too many levels of symbolic links)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
      return 'a path component is a file, not a folder';
    case 'ENAMETOOLONG':
      return 'name too long';
    default:
      return code ?? (e instanceof Error ? e.message : String(e));
  }
}

/** What a non-regular file is, for messages. */
function kindOf(s: Awaited<ReturnType<typeof stat>>): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Why `file` cannot be read as an image file, or undefined when it is a regular file. Decided
 * from `stat` alone (symlinks followed), without opening it: opening a FIFO named `.png` blocks
 * until a writer appears, and a device can be endless.
 */
export async function regularFileProblem(file: string): Promise<string | undefined> {
  let s: Awaited<ReturnType<typeof stat>>;
  try {
    s = await stat(file);
  } catch (e) {
    return fsErrorText(e);
  }
  return s.isFile() ? undefined : `${kindOf(s)}, not an image file`;
}

/**
 * True when `file` lies inside `root` (both resolved; no `..` escape, not elsewhere on disk).
 * Symlinks are not followed: this is about what the annotation file names.
 */
export function isInside(root: string, file: string): boolean {
  const rel = relative(resolve(root), resolve(file));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}
