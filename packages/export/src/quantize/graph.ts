/**
 * The decoded ONNX graph as plain objects (protobufjs `toObject` with int64 as
 * numbers), and the little the quantiser needs to read and edit it.
 */
import { ModelProto } from '../onnx/proto.js';

export interface AttrObj {
  name: string;
  type?: number;
  i?: number;
  f?: number;
  ints?: number[];
  floats?: number[];
  s?: Uint8Array;
}
export interface NodeObj {
  name?: string;
  opType: string;
  domain?: string;
  input: string[];
  output: string[];
  attribute?: AttrObj[];
}
export interface TensorObj {
  name: string;
  dataType: number;
  dims?: number[];
  rawData?: Uint8Array;
  floatData?: number[];
  int64Data?: number[];
  int32Data?: number[];
}
export interface ValueInfoObj {
  name: string;
  type?: unknown;
}
export interface GraphObj {
  name?: string;
  node: NodeObj[];
  initializer: TensorObj[];
  input: ValueInfoObj[];
  output: ValueInfoObj[];
  valueInfo?: ValueInfoObj[];
}
export interface ModelObj {
  graph: GraphObj;
  metadataProps?: Array<{ key: string; value: string }>;
  [k: string]: unknown;
}

/** `TensorProto.DataType` values. */
export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7 } as const;

export function decodeModel(bytes: Uint8Array): ModelObj {
  const msg = ModelProto.decode(bytes);
  const obj = ModelProto.toObject(msg, { longs: Number, arrays: true }) as ModelObj;
  if (!obj.graph) throw new Error('quantize: the ONNX model has no graph');
  for (const n of obj.graph.node) {
    n.input ??= [];
    n.output ??= [];
  }
  obj.graph.initializer ??= [];
  return obj;
}

export function encodeModel(model: ModelObj): Uint8Array {
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A float32 initialiser's values (raw_data or float_data). */
export function floatValues(t: TensorObj): Float32Array {
  if (t.dataType !== DT.FLOAT) throw new Error(`quantize: initialiser '${t.name}' is not float32`);
  if (t.rawData && t.rawData.length > 0) {
    if (!LITTLE_ENDIAN) throw new Error('quantize: raw_data is little-endian; this platform is big-endian');
    // Copy: the decoded bytes may not be 4-byte aligned.
    return new Float32Array(copyBytes(t.rawData));
  }
  return Float32Array.from(t.floatData ?? []);
}

/** An int64 initialiser's values (int64_data or raw_data). */
export function int64Values(t: TensorObj): number[] {
  if (t.dataType !== DT.INT64) throw new Error(`quantize: initialiser '${t.name}' is not int64`);
  if (t.rawData && t.rawData.length > 0)
    return Array.from(new BigInt64Array(copyBytes(t.rawData)), (v) => Number(v));
  return [...(t.int64Data ?? [])];
}

/** An aligned copy (a decoded Buffer's \`slice\` is a view into the whole file). */
function copyBytes(b: Uint8Array): ArrayBuffer {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out.buffer;
}

export function attr(n: NodeObj, name: string): AttrObj | undefined {
  return n.attribute?.find((a) => a.name === name);
}

/** A new initialiser from typed data, stored as raw_data (little-endian). */
export function tensor(
  name: string,
  dataType: number,
  dims: readonly number[],
  data: Float32Array | Int8Array | Uint8Array | Int32Array,
): TensorObj {
  return {
    name,
    dataType,
    dims: [...dims],
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

/** Who consumes each value: `[node, input index]`. */
export function consumersOf(graph: GraphObj): Map<string, Array<[NodeObj, number]>> {
  const m = new Map<string, Array<[NodeObj, number]>>();
  for (const n of graph.node) {
    n.input.forEach((name, i) => {
      if (!name) return;
      let list = m.get(name);
      if (!list) m.set(name, (list = []));
      list.push([n, i]);
    });
  }
  return m;
}
