/**
 * `@bmc/core/node`: helpers that need Node's file system (the main entry stays browser-safe).
 * The one crash-safe file writer every package and the app use.
 */
export { fsyncDir, tempSibling, writeDirAtomic, writeFileAtomic, writeFileSynced } from './atomic-file.js';
