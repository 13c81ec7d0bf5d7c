export { upsampleLike } from './common.js';
export * from './fpn.js';
export * from './neck.js';
export * from './pan.js';
