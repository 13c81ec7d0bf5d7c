export { type ConvGeometry, convGeometry, type TfPad } from './conv-geometry.js';
export {
  backpropFilterGraph,
  backpropInputGraph,
  type ConvKernelKind,
  type ConvLayout,
  chooseLayout,
  forwardGraph,
  IM2COL_LIMIT,
  type LayoutOption,
  type NativeActivation,
  NCHWC_DOMAIN,
  NCHWC_MIN_POSITIONS,
  nchwcApplies,
  TAPS_BAND_POSITIONS,
} from './conv-graphs.js';
export { fixCpuResizeNearestNeighborGrad } from './cpu-resize-nearest-grad.js';
export {
  createOrtKernels,
  DEFAULT_LAYOUT,
  describeEngine,
  type EngineDescription,
  type EngineHandle,
  type EnginePath,
  type InstallEngineOptions,
  installEngineKernels,
  type OrtKernelSet,
  type RegisterOrtKernelsOptions,
  registerOrtKernels,
  registerWasmFilterGrad,
} from './engine.js';
export {
  installLeanTape,
  leanGradients,
  leanVariableGrads,
  registerLeanReluGradient,
  withoutTape,
} from './lean-gradients.js';
export { nchwcBlockSize } from './nchwc-probe.js';
export {
  decodeModel,
  encodeModel,
  type OnnxAttr,
  type OnnxGraph,
  type OnnxNode,
  OPSET,
} from './onnx-model.js';
export { checkBindingShape, loadOrtNative, ORT_VERSION, type OrtNative } from './ort-binding.js';
export type { LayoutChoice } from './ort-kernels.js';
export type { GraphOptimizationLevel, SessionStats } from './session-cache.js';
export { registerFastTileGradient } from './tile-gradient.js';
export { registerCopyFreeWasmKernels } from './wasm-copy-free-kernels.js';
export { makeWasmFilterGrad } from './wasm-filter-grad.js';
export { registerMissingWasmKernels } from './wasm-missing-kernels.js';
export { registerFastWasmTile } from './wasm-tile.js';
