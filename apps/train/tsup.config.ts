import { defineConfig } from 'tsup';

export default defineConfig({
  // The replica worker is its own entry: worker threads load it by file name.
  entry: { index: 'src/index.ts', cli: 'src/cli.ts', 'replica-worker': 'src/train/replica-worker.ts' },
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  clean: true,
  sourcemap: true,
  target: 'es2022',
  // Native backends are optional and may be absent or broken: never bundle them.
  external: [/^@tensorflow\//, /^@bmc\//, 'onnxruntime-node', 'sharp'],
});
