import { defineConfig } from 'tsup';

export default defineConfig({
  // onnx-proto: the ONNX schema as protobufjs types, for @bmc/engine's kernel graphs (one copy of onnx.proto).
  entry: { index: 'src/index.ts', metadata: 'src/metadata.ts', 'onnx-proto': 'src/onnx/proto.ts' },
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  treeshake: true,
  target: 'es2022',
  external: [/^@tensorflow\//, 'onnxruntime-node', 'protobufjs', /^protobufjs\//],
});
