import { AttributeType, DataType } from './proto.js';

// ONNX raw_data is little-endian; typed arrays use the platform's order.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** An attribute value: `int`, `float`, `ints` (int64 list), `floats` or `string`. */
export type OnnxAttr =
  | { int: number }
  | { float: number }
  | { ints: readonly number[] }
  | { floats: readonly number[] }
  | { string: string };

/** A graph input or output with per-axis size (number) or symbolic name (string); float32 unless `int64`. */
export interface OnnxValueInfo {
  name: string;
  shape: ReadonlyArray<number | string>;
  elemType?: 'float32' | 'int64';
}

/**
 * Accumulates the nodes and initialisers of one ONNX graph and hands out unique
 * value names. The plain objects it builds follow onnx.proto's field names in
 * protobufjs' camelCase and are encoded by `encodeModel`.
 */
export class OnnxGraphBuilder {
  readonly nodes: object[] = [];
  readonly initializers: object[] = [];
  private readonly used = new Set<string>();
  private readonly int64Cache = new Map<string, string>();
  private readonly floatCache = new Map<string, string>();

  /** A fresh value name based on `base` (sanitised; tfjs names may contain '/'). */
  name(base: string): string {
    const clean = base.replace(/[^A-Za-z0-9_.:/-]/g, '_');
    let n = clean;
    for (let i = 1; this.used.has(n); i++) n = `${clean}_${i}`;
    this.used.add(n);
    return n;
  }

  /** Reserves an exact name (graph inputs/outputs); throws if it is taken. */
  reserve(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX export: value name '${name}' is used twice`);
    this.used.add(name);
    return name;
  }

  /**
   * A float32 initialiser `dims` from `data` (row-major), stored as raw_data. Takes
   * ownership of `data` (no copy: detector weights are ~140 MB).
   */
  floatTensor(base: string, dims: readonly number[], data: Float32Array): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) {
      throw new Error(`ONNX export: initialiser ${base} has ${data.length} values for dims [${dims}]`);
    }
    const name = this.name(base);
    if (!LITTLE_ENDIAN)
      throw new Error('ONNX export: raw_data must be little-endian; this platform is big-endian');
    this.initializers.push({
      name,
      dataType: DataType.FLOAT,
      dims: [...dims],
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** A shared int64 constant (shapes, pads, axes): 1-D, or a scalar (Range bounds, Gather index). */
  int64(values: readonly number[], scalar = false): string {
    const key = `${scalar ? 's' : 'v'}:${values.join(',')}`;
    const hit = this.int64Cache.get(key);
    if (hit) return hit;
    const name = this.name(scalar ? 'const_i64' : `const_i64_${values.length}`);
    this.initializers.push({
      name,
      dataType: DataType.INT64,
      dims: scalar ? [] : [values.length],
      int64Data: [...values],
    });
    this.int64Cache.set(key, name);
    return name;
  }

  /** A shared float32 constant, scalar when `dims` is empty (Clip bounds) or 1-D (Resize scales). */
  float(values: readonly number[], scalar = false): string {
    const key = `${scalar ? 's' : 'v'}:${values.join(',')}`;
    const hit = this.floatCache.get(key);
    if (hit) return hit;
    const name = this.name(scalar ? 'const_f32' : `const_f32_${values.length}`);
    this.initializers.push({
      name,
      dataType: DataType.FLOAT,
      dims: scalar ? [] : [values.length],
      floatData: [...values],
    });
    this.floatCache.set(key, name);
    return name;
  }

  /**
   * Appends a node and returns its output names. `outputs` are names already
   * reserved, or a count of fresh outputs named after `name`.
   */
  node(
    op: string,
    inputs: readonly string[],
    name: string,
    attrs: Record<string, OnnxAttr> = {},
    outputs: readonly string[] | number = 1,
  ): string[] {
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, i) => this.name(outputs === 1 ? name : `${name}:${i}`))
        : [...outputs];
    this.nodes.push({
      name: this.name(`${name}/${op}`),
      opType: op,
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }
}

function attribute(name: string, a: OnnxAttr): object {
  if ('int' in a) return { name, type: AttributeType.INT, i: a.int };
  if ('float' in a) return { name, type: AttributeType.FLOAT, f: a.float };
  if ('ints' in a) return { name, type: AttributeType.INTS, ints: [...a.ints] };
  if ('floats' in a) return { name, type: AttributeType.FLOATS, floats: [...a.floats] };
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode(a.string) };
}

/** A `ValueInfoProto`; string dims become `dim_param` (symbolic), numbers `dim_value`. */
export function valueInfo(v: OnnxValueInfo): object {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.elemType === 'int64' ? DataType.INT64 : DataType.FLOAT,
        shape: { dim: v.shape.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}
