import { defineConfig } from 'vitest/config';

// The command test spawns node twice, each loading the TypeScript parser: seconds on a busy machine.
export default defineConfig({
  test: { include: ['test/**/*.test.mjs'], testTimeout: 60_000 },
});
