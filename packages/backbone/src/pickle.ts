/**
 * A restricted reader for Python pickles, the format inside a PyTorch `.pth` file.
 *
 * Why restricted: unpickling is running a small program, and its GLOBAL + REDUCE opcodes call any
 * importable Python function (`os.system` included), which is how a malicious `.pth` carries code.
 * This reader executes nothing. It knows the opcodes a state dict of tensors uses (protocols 2-4),
 * resolves GLOBAL only against the caller's allow-list (each allowed global is a plain TypeScript
 * function on already-decoded values), and refuses every other opcode or global with an error that
 * names the file, the opcode or global and its byte offset.
 */

export class PickleError extends Error {
  override name = 'PickleError';
}

/** A resolved, allowed global: a TypeScript stand-in for the Python callable or class. */
export interface PickleGlobal {
  readonly module: string;
  readonly name: string;
  /** Called by REDUCE with the decoded argument tuple; absent: the global may only be passed around. */
  readonly call?: (args: unknown[]) => unknown;
}

/** A dict of the pickle (string or number keys), kept in insertion order like Python's. */
export type PickleDict = Map<unknown, unknown>;

export interface UnpickleOptions {
  /** File name for error messages. */
  source: string;
  /** Allowed globals by `"module name"`; any other GLOBAL is refused. */
  globals: ReadonlyMap<string, PickleGlobal>;
  /** Handles BINPERSID (PyTorch's storage references); without it the opcode is refused. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Start offset in `bytes`. Default 0. */
  offset?: number;
}

export interface UnpickleResult {
  value: unknown;
  /** Offset just after the STOP opcode (a legacy `.pth` holds several pickles back to back). */
  end: number;
}

/** Opcode names for error messages (the ones refused included, so the message says what it was). */
const OPCODE_NAMES: Record<number, string> = {
  40: 'MARK',
  46: 'STOP',
  48: 'POP',
  49: 'POP_MARK',
  50: 'DUP',
  70: 'FLOAT',
  73: 'INT',
  74: 'BININT',
  75: 'BININT1',
  76: 'LONG',
  77: 'BININT2',
  78: 'NONE',
  80: 'PERSID',
  81: 'BINPERSID',
  82: 'REDUCE',
  83: 'STRING',
  84: 'BINSTRING',
  85: 'SHORT_BINSTRING',
  86: 'UNICODE',
  88: 'BINUNICODE',
  97: 'APPEND',
  98: 'BUILD',
  99: 'GLOBAL',
  100: 'DICT',
  125: 'EMPTY_DICT',
  101: 'APPENDS',
  103: 'GET',
  104: 'BINGET',
  105: 'INST',
  106: 'LONG_BINGET',
  108: 'LIST',
  93: 'EMPTY_LIST',
  111: 'OBJ',
  112: 'PUT',
  113: 'BINPUT',
  114: 'LONG_BINPUT',
  115: 'SETITEM',
  116: 'TUPLE',
  41: 'EMPTY_TUPLE',
  117: 'SETITEMS',
  71: 'BINFLOAT',
  128: 'PROTO',
  129: 'NEWOBJ',
  130: 'EXT1',
  131: 'EXT2',
  132: 'EXT4',
  133: 'TUPLE1',
  134: 'TUPLE2',
  135: 'TUPLE3',
  136: 'NEWTRUE',
  137: 'NEWFALSE',
  138: 'LONG1',
  139: 'LONG4',
  140: 'SHORT_BINUNICODE',
  141: 'BINUNICODE8',
  142: 'BINBYTES8',
  143: 'EMPTY_SET',
  144: 'ADDITEMS',
  145: 'FROZENSET',
  146: 'NEWOBJ_EX',
  147: 'STACK_GLOBAL',
  148: 'MEMOIZE',
  149: 'FRAME',
  66: 'BINBYTES',
  67: 'SHORT_BINBYTES',
  150: 'BYTEARRAY8',
  151: 'NEXT_BUFFER',
  152: 'READONLY_BUFFER',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

/** Reads one pickle from `bytes` without executing anything (see the module comment). */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): UnpickleResult {
  const { source, globals } = options;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = options.offset ?? 0;
  let opPos = pos;
  let op = 0;
  const fail = (msg: string): never => {
    throw new PickleError(`${source}: pickle byte ${opPos}: ${msg}`);
  };
  const need = (n: number) => {
    if (pos + n > bytes.length) fail(`${OPCODE_NAMES[op] ?? 'opcode'} runs past the end of the data`);
  };
  const u8 = () => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = () => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('length does not fit in memory');
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const b = bytes.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail(`${OPCODE_NAMES[op]} has no end of line`);
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const text = (n: number) => {
    try {
      return utf8.decode(take(n));
    } catch {
      return fail('string is not valid UTF-8');
    }
  };

  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const pop = () => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!))
      fail(`${OPCODE_NAMES[op]} on an empty stack`);
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) fail(`${OPCODE_NAMES[op]} on an empty stack`);
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) fail(`${OPCODE_NAMES[op]} without a MARK`);
    return stack.splice(m!);
  };
  const resolveGlobal = (module: string, name: string) => {
    const g = globals.get(`${module} ${name}`);
    if (!g) {
      fail(
        `refusing global '${module} ${name}': a tensor state dict never needs it, and loading it could ` +
          'run code (bmc executes nothing from a .pth file)',
      );
    }
    return g!;
  };
  const asDict = (d: unknown, what: string) => {
    if (!(d instanceof Map)) fail(`${what} on a ${describe(d)}, not a dict`);
    return d as PickleDict;
  };
  const asList = (l: unknown, what: string) => {
    if (!Array.isArray(l) || Object.isFrozen(l)) fail(`${what} on a ${describe(l)}, not a list`);
    return l as unknown[];
  };
  const tuple = (items: unknown[]) => Object.freeze(items);

  for (;;) {
    opPos = pos;
    if (pos >= bytes.length) fail('data ends before the STOP opcode');
    op = bytes[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) fail(`pickle protocol ${bytes[pos - 1]} is unknown`);
        break;
      case 0x95: // FRAME: a length prefix only; the opcodes follow inline.
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length !== 1 || marks.length > 0) fail(`STOP with ${stack.length} values on the stack`);
        return { value: stack[0], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const n = u8();
        const b = take(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        // Beyond 2^53 a bigint (torch's legacy magic number is one); tensor sizes never are.
        const safe = v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER);
        stack.push(safe ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      case 0x58: // BINUNICODE
        stack.push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(text(u64()));
        break;
      case 0x54: // BINSTRING (Python 2 str, as in old checkpoints)
        stack.push(latin1.decode(take(u32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(take(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(take(u8()).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(tuple(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        asList(top(), 'APPEND').push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        asList(top(), 'APPENDS').push(...items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) fail('DICT with an odd number of items');
        const d: PickleDict = new Map();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        asDict(top(), 'SETITEM').set(k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) fail('SETITEMS with an odd number of items');
        const d = asDict(top(), 'SETITEMS');
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x68 ? u8() : u32();
        if (!memo.has(k)) fail(`memo entry ${k} was never stored`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE: only allowed globals with a TypeScript stand-in can be "called".
        const args = pop();
        const f = pop();
        if (!isGlobal(f)) fail(`REDUCE on a ${describe(f)}, not an allowed global`);
        const g = f as PickleGlobal;
        if (!g.call) fail(`REDUCE on '${g.module} ${g.name}', which is not callable here`);
        if (!Array.isArray(args)) fail(`REDUCE arguments are a ${describe(args)}, not a tuple`);
        try {
          stack.push(g.call!([...(args as unknown[])]));
        } catch (e) {
          if (e instanceof PickleError) throw e;
          fail(`'${g.module} ${g.name}': ${(e as Error).message}`);
        }
        break;
      }
      case 0x62: {
        // BUILD: state for an object. A state dict's OrderedDict gets its `_metadata` (module versions)
        // this way; that metadata is not needed, so the state is dropped. Nothing else may be built.
        const state = pop();
        const obj = top();
        if (!(obj instanceof Map) && !isTensorLike(obj)) fail(`BUILD on a ${describe(obj)}`);
        void state;
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('BINPERSID (a persistent reference) is not expected here');
        stack.push(options.persistentLoad!(pid));
        break;
      }
      default:
        fail(
          `refusing opcode ${OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`}: ` +
            'a tensor state dict never uses it',
        );
    }
  }
}

function isGlobal(v: unknown): v is PickleGlobal {
  return typeof v === 'object' && v !== null && 'module' in v && 'name' in v && !(v instanceof Map);
}

/** Objects the caller's globals return (tensors) carry this marker so BUILD on them is allowed. */
export const PICKLE_OBJECT = Symbol('pickle-object');

function isTensorLike(v: unknown): boolean {
  return typeof v === 'object' && v !== null && PICKLE_OBJECT in v;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (isGlobal(v)) return `global '${v.module} ${v.name}'`;
  return typeof v;
}
