import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/cli.ts', 'src/commands.ts', 'src/pipeline/index.ts', 'src/jobs/index.ts'],
  format: ['esm'],
  dts: { entry: ['src/index.ts', 'src/commands.ts', 'src/pipeline/index.ts', 'src/jobs/index.ts'] },
  // The viewer (vite) writes dist/viewer after this; tsup must not wipe it on rebuild order changes.
  clean: ['**/*', '!viewer/**'],
  sourcemap: true,
  target: 'es2022',
  external: [/^@bmc\//, 'onnxruntime-node', 'onnxruntime-web', 'sharp', 'fastify', /^@fastify\//],
});
