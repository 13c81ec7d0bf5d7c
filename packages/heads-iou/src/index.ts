export * from './detection-loss.js';
export * from './detector.js';
export * from './focal-loss.js';
export * from './head.js';
export * from './postprocess.js';
