// Node-only training helpers (image decoding through @bmc/data / sharp).
export * from './augment.js';
export * from './folders.js';
export * from './predict.js';
export * from './sampling.js';
export * from './synth.js';
