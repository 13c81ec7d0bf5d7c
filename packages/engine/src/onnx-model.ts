/**
 * Encodes small ONNX graphs (a handful of nodes, float32 graph inputs, int64
 * initialisers for shapes) as ModelProto bytes. The schema is the onnx
 * project's own `onnx.proto` as protobufjs types, from `@bmc/export/onnx-proto`
 * (the one copy in the workspace), encoded by protobufjs.
 */
import { AttributeType, DataType, ModelProto } from '@bmc/export/onnx-proto';

const { FLOAT, INT64 } = DataType;
const { FLOAT: ATTR_FLOAT, INT: ATTR_INT, STRING: ATTR_STRING, INTS: ATTR_INTS } = AttributeType;

/** An attribute value: `int`, `float`, `ints` (int64 list) or `string`. */
export type OnnxAttr = { int: number } | { float: number } | { ints: readonly number[] } | { string: string };

export interface OnnxNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Record<string, OnnxAttr>;
  domain?: string;
}

export interface OnnxValue {
  name: string;
  /**
   * Static shape; every dimension is known because sessions are cached per shape
   * (a negative entry declares an unknown dimension, for probes whose output shape is the answer).
   */
  shape: readonly number[];
}

export interface OnnxGraph {
  /** float32 graph inputs, in feed order. */
  inputs: readonly OnnxValue[];
  /** float32 graph outputs. */
  outputs: readonly OnnxValue[];
  nodes: readonly OnnxNode[];
  /** int64 constants (Reshape shapes, Pad amounts, Slice bounds). */
  int64Constants?: Record<string, readonly number[]>;
  /** float32 scalar constants (Clip bounds). */
  floatScalars?: Record<string, number>;
}

/** Opset 17: Pad/Slice/Reshape take their parameters as inputs; LayerNorm-era, supported by ORT 1.30. */
export const OPSET = 17;
const IR_VERSION = 8;

function valueInfo(v: OnnxValue) {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: { dim: v.shape.map((d, i) => (d < 0 ? { dimParam: `d${i}` } : { dimValue: d })) },
      },
    },
  };
}

function attribute(name: string, a: OnnxAttr) {
  if ('int' in a) return { name, type: ATTR_INT, i: a.int };
  if ('float' in a) return { name, type: ATTR_FLOAT, f: a.float };
  if ('ints' in a) return { name, type: ATTR_INTS, ints: [...a.ints] };
  return { name, type: ATTR_STRING, s: new TextEncoder().encode(a.string) };
}

/** Serialises a graph to ONNX ModelProto bytes. */
export function encodeModel(graph: OnnxGraph, name = 'bmc_kernel'): Uint8Array {
  const initializer: Record<string, unknown>[] = Object.entries(graph.int64Constants ?? {}).map(
    ([n, values]) => ({
      name: n,
      dataType: INT64,
      dims: [values.length],
      int64Data: [...values],
    }),
  );
  for (const [n, value] of Object.entries(graph.floatScalars ?? {})) {
    initializer.push({ name: n, dataType: FLOAT, dims: [], floatData: [value] });
  }
  const model = {
    irVersion: IR_VERSION,
    producerName: '@bmc/engine',
    // Contrib domains (onnxruntime's com.microsoft.nchwc kernels) are at version 1.
    opsetImport: [
      { domain: '', version: OPSET },
      ...[...new Set(graph.nodes.map((n) => n.domain ?? ''))]
        .filter((d) => d !== '')
        .map((domain) => ({ domain, version: 1 })),
    ],
    graph: {
      name,
      node: graph.nodes.map((n, i) => ({
        name: `${n.op}_${i}`,
        opType: n.op,
        domain: n.domain ?? '',
        input: [...n.inputs],
        output: [...n.outputs],
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attribute(k, v)),
      })),
      initializer,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
  };
  const err = ModelProto.verify(model);
  if (err) throw new Error(`@bmc/engine: invalid ONNX model '${name}': ${err}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

/** Decodes ModelProto bytes back to a plain object (tests and debugging). */
export function decodeModel(bytes: Uint8Array): Record<string, unknown> {
  return ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, enums: String, bytes: String });
}
