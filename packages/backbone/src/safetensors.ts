/**
 * A safetensors reader and writer on plain bytes (Node and browser; no fs).
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}}`,
 * then the data buffer; offsets are relative to the buffer's start.
 */

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const ITEM_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Largest header accepted (the reference implementation's limit), so a corrupt length cannot exhaust memory. */
const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range inside the file (absolute, header included). */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  /** Entries in file order (by offset). */
  entries: Map<string, SafetensorsEntry>;
  /** The tensor as float32 (F64/F16/BF16/integer types converted); throws for unknown names. */
  getFloat32(name: string): Float32Array;
}

/**
 * Parses and validates a safetensors file: header length within the file,
 * JSON object, known dtypes, integer shapes, offsets within the buffer,
 * sizes matching shape x dtype, no overlapping ranges and no gaps (as the
 * reference parser). Errors name `source` and the offending entry.
 */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors'): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new SafetensorsError(`${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES))
    fail(`header length ${headerLen64} exceeds ${MAX_HEADER_BYTES}`);
  const headerLen = Number(headerLen64);
  if (8 + headerLen > bytes.length) {
    fail(`header length ${headerLen} runs past the end of the file (${bytes.length} bytes): truncated?`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (err) {
    fail(`header is not valid UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const list: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(`entry '${name}' is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in ITEM_SIZE))
      fail(`entry '${name}': unknown dtype ${String(e.dtype)}`);
    const dtype = e.dtype as SafetensorsDtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(
        `entry '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`,
      );
    }
    const shape = e.shape as number[];
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`entry '${name}': data_offsets must be two non-negative integers, got ${JSON.stringify(off)}`);
    }
    const [b, en] = off as [number, number];
    if (en < b) fail(`entry '${name}': data_offsets [${b}, ${en}] end before they begin`);
    if (en > dataLen)
      fail(`entry '${name}': data_offsets [${b}, ${en}] run past the data (${dataLen} bytes): truncated?`);
    const expected = shape.reduce((a, d) => a * d, 1) * ITEM_SIZE[dtype];
    if (en - b !== expected) {
      fail(`entry '${name}': ${en - b} bytes for shape [${shape}] ${dtype} (expected ${expected})`);
    }
    list.push({ name, dtype, shape, begin: dataStart + b, end: dataStart + en });
  }
  list.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = dataStart;
  for (const e of list) {
    if (e.begin < cursor) fail(`entry '${e.name}' overlaps the previous tensor's bytes`);
    if (e.begin > cursor) fail(`gap of ${e.begin - cursor} bytes before entry '${e.name}'`);
    cursor = e.end;
  }
  if (cursor !== bytes.length) fail(`${bytes.length - cursor} bytes after the last tensor are not described`);
  const entries = new Map(list.map((e) => [e.name, e]));
  return {
    metadata,
    entries,
    getFloat32(name: string): Float32Array {
      const e = entries.get(name);
      if (!e) throw new SafetensorsError(`${source}: no tensor named '${name}'`);
      return toFloat32(bytes, e);
    },
  };
}

function toFloat32(bytes: Uint8Array, e: SafetensorsEntry): Float32Array {
  // Copy so the typed array is aligned whatever the header length was.
  return decodeFloat32(bytes.slice(e.begin, e.end), e.dtype);
}

/**
 * Little-endian values of `dtype` as float32 (also used for the storages of `.pth` files). Takes
 * ownership of `raw`: for F32 the result is a view of its buffer, which must be aligned.
 */
export function decodeFloat32(raw: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = raw.length / ITEM_SIZE[dtype];
  if (dtype === 'F32') return new Float32Array(raw.buffer, raw.byteOffset, n);
  const out = new Float32Array(n);
  const bits = new Uint32Array(1);
  const bitsAsFloat = new Float32Array(bits.buffer);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'F64':
        out[i] = v.getFloat64(8 * i, true);
        break;
      case 'F16':
        out[i] = halfToFloat(v.getUint16(2 * i, true));
        break;
      case 'BF16':
        // bfloat16 is the top half of a float32.
        bits[0] = v.getUint16(2 * i, true) << 16;
        out[i] = bitsAsFloat[0]!;
        break;
      case 'I64':
        out[i] = Number(v.getBigInt64(8 * i, true));
        break;
      case 'I32':
        out[i] = v.getInt32(4 * i, true);
        break;
      case 'I16':
        out[i] = v.getInt16(2 * i, true);
        break;
      case 'I8':
        out[i] = v.getInt8(i);
        break;
      default:
        out[i] = v.getUint8(i);
    }
  }
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

export interface SafetensorsInput {
  shape: number[];
  /** float32 values, row-major (torch's layout). */
  data: Float32Array;
}

/** Serialises float32 tensors (names sorted, header padded to 8 bytes as the reference writer does). */
export function writeSafetensors(
  tensors: Record<string, SafetensorsInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name]!;
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (n !== t.data.length)
      throw new SafetensorsError(
        `writeSafetensors: '${name}' has ${t.data.length} values for shape [${t.shape}]`,
      );
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = new Uint8Array(json.length + ((8 - (json.length % 8)) % 8)).fill(0x20);
  headerBytes.set(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors[name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), pos);
    pos += d.byteLength;
  }
  return out;
}
