import { constants, existsSync } from 'node:fs';
import { access, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '@bmc/core';

/** Errno codes that no other image would escape: the output folder itself cannot take files. */
const WHY: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a path component is a file, not a folder',
};

/**
 * A write into the output folder that failed for a reason every later write would share (full
 * disk, read-only or forbidden folder). `bmc detect` stops on it with this one message instead of
 * reporting each remaining image as skipped. A full disk is failed work (exit 1); a folder the
 * user cannot write to is bad input (exit 2, `kind: 'input'`).
 */
export class OutputWriteError extends Error {
  override name = 'OutputWriteError';
  readonly kind: 'input' | 'failed';
  constructor(
    readonly dir: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot write ${dir}: ${WHY[code] ?? code} (${code})`, options);
    this.kind = code === 'ENOSPC' || code === 'EDQUOT' ? 'failed' : 'input';
  }
}

/** `e` as an {@link OutputWriteError} for `dir` when its errno says the folder cannot take files. */
export function outputWriteError(e: unknown, dir: string): OutputWriteError | undefined {
  if (e instanceof OutputWriteError) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code && code in WHY ? new OutputWriteError(dir, code, { cause: e }) : undefined;
}

/**
 * Node's recursive mkdir reports ENOENT when a folder cannot be created on a read-only file
 * system; the nearest existing ancestor, asked for write access, says why (EROFS, EACCES).
 */
async function trueCause(e: unknown, dir: string): Promise<unknown> {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return e;
  let at = resolve(dir);
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  try {
    await access(at, constants.W_OK);
    return e;
  } catch (cause) {
    return cause;
  }
}

/**
 * Creates `dir` and `subdirs` and proves the folder takes a file (a probe written and removed),
 * so a read-only or forbidden output folder is reported once, up front, by name.
 */
export async function prepareOutputDir(dir: string, subdirs: readonly string[] = []): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    for (const s of subdirs) await mkdir(join(dir, s), { recursive: true });
    const probe = join(dir, `.bmc-write-probe-${process.pid}`);
    await writeFile(probe, '');
    await rm(probe, { force: true });
  } catch (e) {
    const err = outputWriteError(await trueCause(e, dir), dir);
    if (err) throw err;
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new InputError(`cannot write ${dir}: it exists and is not a folder`, dir, { cause: e });
    throw e;
  }
}
