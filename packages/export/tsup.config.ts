import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/metadata.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  treeshake: true,
  target: 'es2022',
  external: [/^@tensorflow\//, 'onnxruntime-node', 'protobufjs', /^protobufjs\//],
});
