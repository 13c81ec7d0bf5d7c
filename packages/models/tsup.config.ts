import { libraryBuild } from '@bmc/tsconfig/tsup.mjs';
import { defineConfig } from 'tsup';

export default defineConfig(libraryBuild({ entry: ['src/index.ts'] }));
