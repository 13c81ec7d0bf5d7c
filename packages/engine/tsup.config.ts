import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  treeshake: true,
  target: 'es2022',
  // onnxruntime-node is a native addon loaded through createRequire at run time.
  external: [/^@tensorflow\//, 'onnxruntime-node', /^@bmc\//],
});
