/**
 * The ONNX schema as protobufjs types. `onnx-descriptor.json` is generated from
 * the onnx project's own `proto/onnx.proto` (see scripts/gen-onnx-descriptor.mjs),
 * so every byte written goes through protobufjs, not a hand-rolled encoder.
 */
import protobuf from 'protobufjs/light.js';
import descriptor from './onnx-descriptor.json';

const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);

export const ModelProto = root.lookupType('onnx.ModelProto');

/** `TensorProto.DataType` values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;

/** `AttributeProto.AttributeType` values. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

export { protobuf };
