/**
 * Crash-safe file and directory writes: data goes to a temporary name in the
 * same directory, is fsynced, then renamed over the target (rename is atomic on
 * POSIX file systems), and the directory entry itself is fsynced.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A unique sibling name for `target` (`.name.tmp-<pid>-<random>`), hidden from globbing. */
export function tempSibling(target: string, tag = 'tmp'): string {
  return join(
    dirname(target),
    `.${basename(target)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

/** Writes `data` to `file` and fsyncs it (no rename: for files inside a temporary directory). */
export function writeFileSynced(file: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const fd = openSync(file, 'w');
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsyncs a directory so that renames and new entries in it survive a crash. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms (Windows) cannot open directories; the rename is still atomic there.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes `file` atomically: temp name in the same directory, fsync, rename, fsync the directory. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = tempSibling(file);
  try {
    writeFileSynced(tmp, data);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(file));
}

/**
 * Fills a fresh temporary directory via `fill`, then moves it to `target`,
 * replacing an existing directory. A crash before the swap leaves the old
 * `target` untouched (plus a `.name.tmp-*` directory); between the two renames
 * of a replacement only the previous version exists, as `.name.old-*`.
 */
export async function writeDirAtomic(
  target: string,
  fill: (tmpDir: string) => Promise<void> | void,
): Promise<void> {
  const parent = dirname(target);
  mkdirSync(parent, { recursive: true });
  const tmp = tempSibling(target);
  mkdirSync(tmp);
  try {
    await fill(tmp);
    fsyncDir(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let old: string | undefined;
  if (existsSync(target)) {
    old = tempSibling(target, 'old');
    renameSync(target, old);
  }
  try {
    renameSync(tmp, target);
  } catch (e) {
    if (old) renameSync(old, target);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fsyncDir(parent);
  if (old) rmSync(old, { recursive: true, force: true });
}
