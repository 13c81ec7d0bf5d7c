export * from './config/load.js';
export * from './config/presets.js';
export * from './config/schema.js';
export * from './train/schedule.js';
export * from './train/sgd.js';
