export * from './anchors.js';
export * from './box-coder.js';
export * from './box-format.js';
export * from './box-ops.js';
export * from './iou.js';
export * from './nms.js';
export type * from './types.js';
export * from './validate.js';
