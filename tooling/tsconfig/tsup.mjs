// The build every published library package shares (tsup): ESM only, declarations, source maps,
// tree-shaken, ES2022. A package's tsup.config.ts names its entry points and what stays external.
export function libraryBuild(options) {
  return {
    format: ['esm'],
    dts: true,
    clean: true,
    sourcemap: true,
    treeshake: true,
    target: 'es2022',
    ...options,
  };
}
