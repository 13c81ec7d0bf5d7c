import { libraryBuild } from '@bmc/tsconfig/tsup.mjs';
import { defineConfig } from 'tsup';

export default defineConfig(
  libraryBuild({
    entry: ['src/index.ts'],
    // onnxruntime-node is a native addon loaded through createRequire at run time.
    external: [/^@tensorflow\//, 'onnxruntime-node', /^@bmc\//],
  }),
);
