export {
  type ClassifierMeta,
  type ClassifierRunner,
  cellDifferential,
  classifyBoxes,
  NON_NUCLEATED,
  readClassifierMeta,
} from './cell-types.js';
export { DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE, detectPixels, mergeTiles } from './detect.js';
export {
  atThreshold,
  type CountingThreshold,
  countingThreshold,
  describeCountingThreshold,
  type ThresholdSource,
} from './operating-point.js';
export { checkGraphNames, ModelLoadError, ortRunner } from './ort-runner.js';
export {
  anchorsFor,
  type EffectiveNms,
  effectiveNms,
  postprocess,
  type RawDetections,
  select,
} from './postprocess.js';
export { type PreparedInput, prepareInput, type Region, roundUp } from './preprocess.js';
export {
  type CocoResult,
  countByClass,
  type DetectionJson,
  toCocoResults,
  toDetectionJson,
} from './results.js';
export { type AppliedScale, applyPixelScale, type ScaleOverrides } from './scale.js';
export { planTiles, type Tile } from './tiling.js';
export type * from './types.js';
