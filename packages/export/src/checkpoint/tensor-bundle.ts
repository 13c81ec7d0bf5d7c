/**
 * Named tensors as one binary blob plus a JSON index (name, shape, dtype,
 * byte offset), the form checkpoints store weights and optimizer slots in.
 * Little-endian, like tfjs's own weight files.
 */
import { CheckpointError } from './manifest.js';

export type BundleDType = 'float32' | 'int32';

export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: BundleDType;
  /** Byte offset into the blob. */
  offset: number;
}

export interface NamedArray {
  name: string;
  shape: number[];
  dtype: BundleDType;
  data: Float32Array | Int32Array;
}

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export function encodeBundle(arrays: readonly NamedArray[]): { specs: TensorSpec[]; blob: Uint8Array } {
  const names = new Set<string>();
  let total = 0;
  const specs = arrays.map((a) => {
    if (names.has(a.name)) throw new Error(`tensor bundle: duplicate name '${a.name}'`);
    names.add(a.name);
    if (a.data.length !== numel(a.shape)) {
      throw new Error(`tensor bundle: '${a.name}' has ${a.data.length} values for shape [${a.shape}]`);
    }
    const spec = { name: a.name, shape: [...a.shape], dtype: a.dtype, offset: total };
    total += a.data.length * 4;
    return spec;
  });
  const blob = new Uint8Array(total);
  arrays.forEach((a, i) => {
    blob.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), specs[i]!.offset);
  });
  return { specs, blob };
}

/**
 * Splits a blob back into arrays, checking that the index covers the blob
 * exactly (a wrong-sized weights file is an error, never a partial read).
 */
export function decodeBundle(specs: unknown, blob: Uint8Array, where: string): NamedArray[] {
  if (!Array.isArray(specs)) throw new CheckpointError(`${where}: tensor index is not an array`);
  let expected = 0;
  for (const s of specs as TensorSpec[]) {
    if (
      typeof s?.name !== 'string' ||
      !Array.isArray(s.shape) ||
      !s.shape.every((d) => Number.isInteger(d) && d >= 0) ||
      (s.dtype !== 'float32' && s.dtype !== 'int32') ||
      s.offset !== expected
    ) {
      throw new CheckpointError(`${where}: malformed tensor index entry ${JSON.stringify(s)?.slice(0, 200)}`);
    }
    expected += numel(s.shape) * 4;
  }
  if (expected !== blob.byteLength) {
    throw new CheckpointError(
      `${where}: the data holds ${blob.byteLength} bytes but its index describes ${expected} bytes ` +
        `(${specs.length} tensors): weights of the wrong size`,
    );
  }
  // Copy into an aligned buffer; a Node Buffer's byteOffset need not be a multiple of 4.
  const aligned = new Uint8Array(blob).buffer;
  return (specs as TensorSpec[]).map((s) => {
    const n = numel(s.shape);
    const data =
      s.dtype === 'float32' ? new Float32Array(aligned, s.offset, n) : new Int32Array(aligned, s.offset, n);
    return { name: s.name, shape: s.shape, dtype: s.dtype, data };
  });
}
