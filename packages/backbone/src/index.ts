export * from './frozen-batch-norm.js';
export * from './parameter-counts.js';
export { PickleError } from './pickle.js';
export * from './pth.js';
export * from './resnet.js';
export * from './safetensors.js';
export * from './torch-conv.js';
export * from './torch-weights.js';
