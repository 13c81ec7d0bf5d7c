// The crash-safe writer (temp name in the same directory, fsync, rename) is @bmc/core/node's, one
// copy for every package and this app.
export { writeFileAtomic } from '@bmc/core/node';
