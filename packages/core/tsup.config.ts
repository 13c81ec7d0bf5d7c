import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/tf.ts', 'src/backend.ts', 'src/node.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  sourcemap: true,
  treeshake: true,
  target: 'es2022',
  external: [/^@tensorflow\//],
});
