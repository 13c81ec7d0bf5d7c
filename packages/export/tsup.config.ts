import { libraryBuild } from '@bmc/tsconfig/tsup.mjs';
import { defineConfig } from 'tsup';

export default defineConfig(
  libraryBuild({
    // onnx-proto: the ONNX schema as protobufjs types, for @bmc/engine's kernel graphs (one copy of onnx.proto).
    entry: { index: 'src/index.ts', metadata: 'src/metadata.ts', 'onnx-proto': 'src/onnx/proto.ts' },
    external: [/^@tensorflow\//, 'onnxruntime-node', 'protobufjs', /^protobufjs\//],
  }),
);
