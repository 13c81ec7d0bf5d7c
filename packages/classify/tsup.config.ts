import { libraryBuild } from '@bmc/tsconfig/tsup.mjs';
import { defineConfig } from 'tsup';

export default defineConfig(
  libraryBuild({
    entry: ['src/index.ts', 'src/train.ts'],
    external: [/^@tensorflow\//, /^@bmc\//],
  }),
);
