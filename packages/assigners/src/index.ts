export { anchorFields } from './anchor-input.js';
export { AtssAssigner, type AtssOptions, meanPlusStd } from './atss.js';
export { type AssignerConfig, createAssigner } from './create.js';
export { focalNegative, focalPositive } from './focal-cost.js';
export { fitGmm1d, type Gmm1d, type GmmOptions, gmmComponent, gmmLogDensity } from './gmm.js';
export { MaxIoUAssigner, type MaxIoUOptions } from './max-iou.js';
export { dynamicK, OtaAssigner, type OtaOptions, type OtaTransport } from './ota.js';
export { PaaAssigner, type PaaGtFit, type PaaOptions } from './paa.js';
export { type RenderAssignmentOptions, renderAssignment } from './render.js';
export { type SinkhornOptions, sinkhorn, type TransportPlan, type TransportProblem } from './sinkhorn.js';
export { inferLevelStrides } from './strides.js';
export {
  type Assigner,
  type AssignInput,
  type AssignResult,
  BACKGROUND,
  IGNORE,
} from './types.js';
