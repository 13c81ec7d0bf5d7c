import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  clean: true,
  sourcemap: true,
  target: 'es2022',
  // Native backends are optional and may be absent or broken: never bundle them.
  external: [/^@tensorflow\//, /^@bmc\//, 'onnxruntime-node', 'sharp'],
});
