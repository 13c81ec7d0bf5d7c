// The crash-safe writers live in @bmc/core/node (one copy for every package); re-exported here as before.
export { writeDirAtomic, writeFileAtomic } from '@bmc/core/node';
export {
  type CheckpointContents,
  type LoadedCheckpoint,
  loadCheckpoint,
  type OptimizerState,
  restoreCheckpoint,
  saveCheckpoint,
  type TrainingState,
  verifyCheckpoint,
} from './checkpoint/checkpoint.js';
export {
  CHECKPOINT_FORMAT,
  CheckpointError,
  type CheckpointManifest,
  type ManifestEntry,
  sha256Hex,
} from './checkpoint/manifest.js';
export * from './metadata.js';
export { SUPPORTED_ACTIVATIONS, UnsupportedLayerError } from './onnx/activations.js';
export {
  BMC_VERSION,
  DETECTOR_OUTPUTS,
  type DetectorConfigLike,
  type DetectorMetadataInput,
  detectorMetadata,
  exportDetectorOnnx,
  IMAGENET_NORMALIZATION,
} from './onnx/detector.js';
export {
  exportOnnx,
  type FunctionalModelLike,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  type OnnxExportOptions,
  type OnnxExportResult,
  type OnnxExportSummary,
} from './onnx/export.js';
export { SUPPORTED_LAYER_CLASSES } from './onnx/layers.js';
export { POSTPROCESS_OUTPUTS } from './onnx/postprocess-graph.js';
export {
  CALIBRATION_METHODS,
  type CalibrationInput,
  type CalibrationMethod,
  type QuantizeOptions,
  type QuantizeResult,
  quantizeOnnx,
} from './quantize/index.js';
