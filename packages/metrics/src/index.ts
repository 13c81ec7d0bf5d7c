export * from './accumulate.js';
export * from './bbox-iou.js';
export * from './coco-data.js';
export * from './coco-eval.js';
export type * from './coco-types.js';
export * from './evaluate-images.js';
export * from './params.js';
export * from './summarize.js';
