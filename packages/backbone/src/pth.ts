/**
 * A reader for PyTorch `.pth` / `.pt` checkpoints holding a state dict of tensors, as written by
 * `torch.save(model.state_dict(), f)` and downloaded by `torchvision.models.resnet50(weights=...)`.
 *
 * Two layouts:
 * - the zip archive of torch >= 1.6: `<name>/data.pkl` (the pickle), `<name>/data/<key>` (one raw,
 *   little-endian storage per key), `<name>/byteorder`, `<name>/version`;
 * - the legacy stream (`_use_new_zipfile_serialization=False`): five pickles back to back (magic number,
 *   protocol version, system info, the object, the storage keys) then each storage as an int64 element
 *   count and its raw bytes.
 *
 * The pickle is read by the restricted reader in `pickle.ts`: only the opcodes and globals a state dict
 * uses are accepted, nothing from the file is executed, and a `.pth` that asks for anything else (such
 * as `os.system`) is refused with the global's name.
 */
import { unzipSync } from 'fflate';
import { PICKLE_OBJECT, PickleError, type PickleGlobal, unpickle } from './pickle.js';
import { decodeFloat32, type SafetensorsDtype } from './safetensors.js';

export class PthError extends Error {
  override name = 'PthError';
}

export interface PthEntry {
  name: string;
  dtype: SafetensorsDtype;
  /** torch's shape (NCHW / OIHW for convolutions). */
  shape: number[];
}

export interface PthFile {
  format: 'zip' | 'legacy';
  /** Tensors in the state dict's order. */
  entries: Map<string, PthEntry>;
  /** The tensor as row-major float32 (any storage type converted, strides applied); throws for unknown names. */
  getFloat32(name: string): Float32Array;
}

const STORAGE_DTYPES: Record<string, { dtype: SafetensorsDtype; size: number }> = {
  FloatStorage: { dtype: 'F32', size: 4 },
  DoubleStorage: { dtype: 'F64', size: 8 },
  HalfStorage: { dtype: 'F16', size: 2 },
  BFloat16Storage: { dtype: 'BF16', size: 2 },
  LongStorage: { dtype: 'I64', size: 8 },
  IntStorage: { dtype: 'I32', size: 4 },
  ShortStorage: { dtype: 'I16', size: 2 },
  CharStorage: { dtype: 'I8', size: 1 },
  ByteStorage: { dtype: 'U8', size: 1 },
  BoolStorage: { dtype: 'BOOL', size: 1 },
};

interface StorageRef {
  key: string;
  dtype: SafetensorsDtype;
  itemSize: number;
  numel: number;
}

interface TensorRef {
  readonly [PICKLE_OBJECT]: true;
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

const isTensor = (v: unknown): v is TensorRef => typeof v === 'object' && v !== null && PICKLE_OBJECT in v;

const intList = (v: unknown, what: string): number[] => {
  if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0))
    throw new Error(`${what} must be a tuple of non-negative integers`);
  return [...v] as number[];
};

/** The globals a tensor state dict pickles, as TypeScript stand-ins; everything else is refused. */
function stateDictGlobals(): Map<string, PickleGlobal> {
  const g = new Map<string, PickleGlobal>();
  const add = (module: string, name: string, call?: (args: unknown[]) => unknown) =>
    g.set(`${module} ${name}`, { module, name, ...(call ? { call } : {}) });
  // The state dict itself (and the empty hook dicts of each tensor).
  add('collections', 'OrderedDict', (args) => {
    if (args.length > 0) throw new Error('expected no arguments');
    return new Map();
  });
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  add('torch._utils', '_rebuild_tensor_v2', (args) => {
    const [storage, offset, size, stride] = args;
    if (!storage || typeof storage !== 'object' || !('key' in storage)) throw new Error('storage expected');
    if (!Number.isInteger(offset) || (offset as number) < 0) throw new Error('bad storage offset');
    const t: TensorRef = {
      [PICKLE_OBJECT]: true,
      storage: storage as StorageRef,
      offset: offset as number,
      shape: intList(size, 'size'),
      stride: intList(stride, 'stride'),
    };
    if (t.shape.length !== t.stride.length) throw new Error('size and stride differ in length');
    return t;
  });
  // nn.Parameter(data, requires_grad, backward_hooks): the data is all a state dict needs.
  add('torch._utils', '_rebuild_parameter', (args) => {
    if (!isTensor(args[0])) throw new Error('tensor expected');
    return args[0];
  });
  // Storage classes are only named (inside persistent ids), never called.
  for (const name of Object.keys(STORAGE_DTYPES)) {
    add('torch', name);
    add('torch.cuda', name);
  }
  return g;
}

/** BINPERSID of torch's pickler: ('storage', storage_type, key, location, numel[, view_metadata]). */
function storageRef(pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5)
    throw new PickleError(`persistent id ${JSON.stringify(pid)} is not a torch storage reference`);
  const [, type, key, , numel, view] = pid as [string, PickleGlobal, unknown, unknown, unknown, unknown];
  const info = type && typeof type === 'object' ? STORAGE_DTYPES[type.name] : undefined;
  if (!info) throw new PickleError('storage reference without a known storage type');
  if (typeof key !== 'string' || !Number.isInteger(numel))
    throw new PickleError(`storage reference ${String(key)} has no string key and integer size`);
  if (view != null) throw new PickleError(`storage ${key} is a view (pre-1.0 checkpoint), not supported`);
  return { key, dtype: info.dtype, itemSize: info.size, numel: numel as number };
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/**
 * True when `bytes` start like a `.pth` rather than safetensors: a zip archive, or a pickle stream whose
 * first opcodes are PROTO 2-5 then LONG1 (torch's magic number) or FRAME. A safetensors file starts with
 * its header length, which would need an implausible size (megabytes of JSON) to look like either.
 */
export function looksLikePth(bytes: Uint8Array): boolean {
  if (ZIP_MAGIC.every((b, i) => bytes[i] === b)) return true;
  return bytes[0] === 0x80 && bytes[1]! >= 2 && bytes[1]! <= 5 && (bytes[2] === 0x8a || bytes[2] === 0x95);
}

/**
 * Parses a `.pth` state dict without executing anything from it (see the module comment). Errors
 * (`PthError`, or `PickleError` for a refused opcode or global) start with `source`.
 */
export function parsePth(bytes: Uint8Array, source = 'pth'): PthFile {
  try {
    return ZIP_MAGIC.every((b, i) => bytes[i] === b) ? parseZip(bytes, source) : parseLegacy(bytes, source);
  } catch (e) {
    if (e instanceof PickleError || e instanceof PthError) throw e;
    throw new PthError(`${source}: ${(e as Error).message}`);
  }
}

function parseZip(bytes: Uint8Array, source: string): PthFile {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes);
  } catch (e) {
    throw new PthError(`${source}: not a readable zip archive (${(e as Error).message})`);
  }
  const pkl = Object.keys(files).filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkl.length !== 1) {
    throw new PthError(
      `${source}: a PyTorch zip checkpoint has one '<name>/data.pkl'; found ${pkl.length} ` +
        `(entries: ${Object.keys(files).slice(0, 8).join(', ')})`,
    );
  }
  const root = pkl[0]!.slice(0, -'data.pkl'.length);
  const order = files[`${root}byteorder`];
  if (order && new TextDecoder().decode(order).trim() !== 'little')
    throw new PthError(`${source}: big-endian checkpoints are not supported`);
  const storages = new Map<string, StorageRef>();
  const { value } = unpickle(files[pkl[0]!]!, {
    source: `${source} (${pkl[0]})`,
    globals: stateDictGlobals(),
    persistentLoad: (pid) => sharedStorage(storages, pid),
  });
  return stateDictFile(value, source, 'zip', (s) => {
    const data = files[`${root}data/${s.key}`];
    if (!data) throw new PthError(`${source}: storage '${root}data/${s.key}' is missing from the archive`);
    return data;
  });
}

/** One `StorageRef` per storage key: tensors that view the same storage share it. */
function sharedStorage(storages: Map<string, StorageRef>, pid: unknown): StorageRef {
  const s = storageRef(pid);
  const seen = storages.get(s.key);
  if (seen) return seen;
  storages.set(s.key, s);
  return s;
}

function parseLegacy(bytes: Uint8Array, source: string): PthFile {
  if (bytes[0] !== 0x80) {
    throw new PthError(
      `${source}: not a PyTorch checkpoint (neither a zip archive nor a pickle stream; safetensors files ` +
        'need the .safetensors extension)',
    );
  }
  const globals = stateDictGlobals();
  const plain = (offset: number, what: string) =>
    unpickle(bytes, { source: `${source} (${what})`, globals: new Map(), offset });
  const magic = plain(0, 'magic number');
  if (magic.value !== LEGACY_MAGIC) {
    throw new PthError(
      `${source}: a pickle, but not a torch.save file (no PyTorch magic number); bmc reads state dicts ` +
        'saved with torch.save',
    );
  }
  const protocol = plain(magic.end, 'protocol version');
  if (protocol.value !== 1001)
    throw new PthError(`${source}: legacy protocol ${protocol.value}, expected 1001`);
  const sysInfo = plain(protocol.end, 'system info');
  const info = sysInfo.value instanceof Map ? sysInfo.value : new Map();
  if (info.get('little_endian') === false)
    throw new PthError(`${source}: big-endian checkpoints are not supported`);
  const storages = new Map<string, StorageRef>();
  const main = unpickle(bytes, {
    source: `${source} (state dict pickle)`,
    globals,
    offset: sysInfo.end,
    persistentLoad: (pid) => sharedStorage(storages, pid),
  });
  const keys = plain(main.end, 'storage keys');
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string'))
    throw new PthError(`${source}: the storage key list is not a list of strings`);
  // Each storage: int64 element count, then the elements, in the order of the key list.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blobs = new Map<string, Uint8Array>();
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const s = storages.get(key);
    if (!s) throw new PthError(`${source}: storage ${key} is listed but no tensor uses it`);
    if (pos + 8 > bytes.length) throw new PthError(`${source}: truncated before storage ${key}`);
    const numel = Number(view.getBigInt64(pos, true));
    if (numel !== s.numel)
      throw new PthError(`${source}: storage ${key} holds ${numel} elements, the pickle says ${s.numel}`);
    const end = pos + 8 + numel * s.itemSize;
    if (end > bytes.length) throw new PthError(`${source}: storage ${key} is truncated`);
    blobs.set(key, bytes.subarray(pos + 8, end));
    pos = end;
  }
  if (pos !== bytes.length)
    throw new PthError(`${source}: ${bytes.length - pos} bytes after the last storage`);
  return stateDictFile(main.value, source, 'legacy', (s) => {
    const b = blobs.get(s.key);
    if (!b) throw new PthError(`${source}: storage ${s.key} is not in the file`);
    return b;
  });
}

/** Wrappers checkpoints commonly put around the state dict (`{'state_dict': ..., 'epoch': ...}`). */
const WRAPPER_KEYS = ['state_dict', 'model', 'model_state_dict'];

function stateDictFile(
  value: unknown,
  source: string,
  format: PthFile['format'],
  storageBytes: (s: StorageRef) => Uint8Array,
): PthFile {
  if (!(value instanceof Map)) throw new PthError(`${source}: holds a ${typeof value}, not a state dict`);
  let dict = value;
  if (![...dict.values()].some(isTensor)) {
    const inner = WRAPPER_KEYS.map((k) => dict.get(k)).find((v) => v instanceof Map);
    if (!inner) {
      throw new PthError(
        `${source}: a dict without tensors (keys: ${[...dict.keys()].slice(0, 8).join(', ')}); ` +
          `expected a state dict, or one under ${WRAPPER_KEYS.map((k) => `'${k}'`).join(' / ')}`,
      );
    }
    dict = inner as Map<unknown, unknown>;
  }
  const tensors = new Map<string, TensorRef>();
  for (const [k, v] of dict) {
    if (typeof k !== 'string') throw new PthError(`${source}: state dict key ${String(k)} is not a string`);
    if (!isTensor(v)) throw new PthError(`${source}: state dict entry '${k}' is not a tensor`);
    const need = v.offset + v.shape.reduce((n, d, i) => n + (d - 1) * v.stride[i]!, 1);
    if (v.shape.every((d) => d > 0) && need > v.storage.numel)
      throw new PthError(`${source}: tensor '${k}' reaches past the end of its storage`);
    tensors.set(k, v);
  }
  const decoded = new Map<string, Float32Array>();
  const storageFloats = (s: StorageRef) => {
    let f = decoded.get(s.key);
    if (!f) {
      const raw = storageBytes(s);
      if (raw.length !== s.numel * s.itemSize) {
        throw new PthError(
          `${source}: storage ${s.key} has ${raw.length} bytes, expected ${s.numel} x ${s.itemSize}`,
        );
      }
      f = decodeFloat32(raw.slice(), s.dtype); // slice: an aligned copy of our own
      decoded.set(s.key, f);
    }
    return f;
  };
  return {
    format,
    entries: new Map(
      [...tensors].map(([name, t]) => [name, { name, dtype: t.storage.dtype, shape: [...t.shape] }]),
    ),
    getFloat32(name: string): Float32Array {
      const t = tensors.get(name);
      if (!t) throw new PthError(`${source}: no tensor named '${name}'`);
      return gather(storageFloats(t.storage), t);
    },
  };
}

/** The tensor's elements in row-major order, following its strides (state-dict tensors can be views). */
function gather(storage: Float32Array, t: TensorRef): Float32Array {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const out = new Float32Array(n);
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let src = t.offset;
  for (let i = 0; i < n; i++) {
    out[i] = storage[src]!;
    // Odometer increment over the shape, moving the source by the strides.
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      src += t.stride[d]!;
      if (idx[d]! < t.shape[d]!) break;
      src -= t.stride[d]! * t.shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}
