// Browser-safe: the crop rule, the model builder, metrics and the differential count.
export * from './crop.js';
export * from './differential.js';
export * from './metrics.js';
export * from './model.js';
export * from './vit.js';
