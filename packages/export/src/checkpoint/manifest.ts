import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '@bmc/core';

/** Value of `manifest.json`'s `format`. */
export const CHECKPOINT_FORMAT = 'bmc-checkpoint/1';
export const MANIFEST_FILE = 'manifest.json';

export interface ManifestEntry {
  /** Path relative to the checkpoint directory. */
  path: string;
  bytes: number;
  /** Lower-case hex SHA-256 of the file's bytes. */
  sha256: string;
}

/** The index of a checkpoint directory, written last: its presence means the rest is complete. */
export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  createdAt: string;
  bmcVersion: string;
  files: ManifestEntry[];
}

/** A checkpoint that is missing, incomplete, truncated, corrupted or inconsistent. */
export class CheckpointError extends InputError {
  override name = 'CheckpointError';
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function manifestEntry(path: string, data: Uint8Array): ManifestEntry {
  return { path, bytes: data.byteLength, sha256: sha256Hex(data) };
}

/** Reads and shape-checks `manifest.json`. */
export function readManifest(dir: string): CheckpointManifest {
  const file = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT'
        ? `checkpoint ${dir}: no ${MANIFEST_FILE} (not a checkpoint, or a save that did not finish)`
        : `checkpoint ${dir}: cannot read ${MANIFEST_FILE} (${(e as Error).message})`,
    );
  }
  let m: CheckpointManifest;
  try {
    m = JSON.parse(text) as CheckpointManifest;
  } catch (e) {
    throw new CheckpointError(`checkpoint ${file}: not valid JSON (${(e as Error).message})`);
  }
  if (m?.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(
      `checkpoint ${file}: format is ${JSON.stringify(m?.format)}, expected '${CHECKPOINT_FORMAT}'`,
    );
  }
  if (
    !Array.isArray(m.files) ||
    !m.files.every(
      (f) =>
        typeof f?.path === 'string' &&
        !f.path.includes('..') &&
        Number.isInteger(f.bytes) &&
        typeof f.sha256 === 'string' &&
        /^[0-9a-f]{64}$/.test(f.sha256),
    )
  ) {
    throw new CheckpointError(`checkpoint ${file}: 'files' must list {path, bytes, sha256} entries`);
  }
  return m;
}

/**
 * Reads every file the manifest lists and checks its size and SHA-256 before
 * anything is parsed. Returns the verified bytes by path.
 */
export function readVerifiedFiles(dir: string, manifest: CheckpointManifest): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const f of manifest.files) {
    const file = join(dir, f.path);
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      throw new CheckpointError(`checkpoint ${dir}: ${f.path} is missing (listed in ${MANIFEST_FILE})`);
    }
    if (size !== f.bytes) {
      throw new CheckpointError(
        `checkpoint ${dir}: ${f.path} is ${size < f.bytes ? 'truncated' : 'longer than recorded'}: ` +
          `${size} bytes on disk, ${f.bytes} in ${MANIFEST_FILE}`,
      );
    }
    const data = new Uint8Array(readFileSync(file));
    const sum = sha256Hex(data);
    if (sum !== f.sha256) {
      throw new CheckpointError(
        `checkpoint ${dir}: ${f.path} is corrupted: SHA-256 ${sum} does not match ${f.sha256} in ${MANIFEST_FILE}`,
      );
    }
    out.set(f.path, data);
  }
  return out;
}
