export { annotate, CLASS_COLOURS, cropRect, crops, overlaySvg } from './annotate.js';
export { type CellClassifier, loadCellClassifier } from './cell-classifier.js';
export { registerInferCommands } from './commands.js';
export {
  type DetectCommandOptions,
  type DetectCommandResult,
  detectCommand,
  type ImageSummary,
  type RemoteDetection,
} from './detect-command.js';
export { checkImageSize, decodeToPixels, IMAGE_EXTENSIONS, ImageTooLargeError } from './image.js';
export { expandInputs } from './inputs.js';
export { type Detector, type LoadModelOptions, loadDetector, ModelLoadError } from './model.js';
export * from './pipeline/index.js';
export {
  CancelledError,
  JobQueue,
  QueueFullError,
  type Reservation,
  type RunOptions,
  TimeoutError,
} from './queue.js';
export { createServer, type InferServer, type ServerOptions } from './server.js';
export {
  type DeepZoomInfo,
  type DeepZoomOptions,
  DZI_FILE,
  DZI_TILES,
  writeDeepZoom,
} from './slide/deep-zoom.js';
export {
  assembleSlide,
  detectSlide,
  detectSlideTile,
  planSlide,
  type SlideDetectOptions,
  type SlidePlan,
  type SlideResult,
} from './slide/detect-slide.js';
export { isSlide, openSlide, type Slide, type SlideLevel } from './slide/open.js';
export { overviewPng, toQuPathGeoJson } from './slide/outputs.js';
export { glassColour } from './slide/tissue.js';
