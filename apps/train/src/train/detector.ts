import type { DetectorConfig, LossOptions, PostprocessOptions } from '@bmc/heads-iou';
import type { TrainConfig } from '../config/schema.js';

/**
 * The network, loss and post-processing settings of a training config, in @bmc/heads-iou's terms.
 * Every field comes from the config (whose preset already filled it): no heads-iou preset underneath,
 * so nothing of the thesis design leaks into a config that does not ask for it.
 */
export function toDetectorConfig(config: TrainConfig, numClasses: number): DetectorConfig {
  const m = config.model;
  const anchors = {
    levels: m.neck.levels.map((l) => ({
      stride: 2 ** l,
      // RetinaNet truncates octave sizes to integers; keep that so presets equal torchvision's anchors.
      sizes: m.head.scales.map((s) => Math.trunc(m.head.anchorScale * 2 ** l * s)),
    })),
    aspectRatios: m.head.aspectRatios,
  };
  return {
    inputSize: null,
    backbone: {
      depth: m.backbone.depth,
      widthMultiplier: m.backbone.widthMultiplier,
      frozenStages: m.backbone.frozenStages,
      frozenBatchNorm: m.backbone.frozenBatchNorm,
    },
    neck: {
      kind: m.neck.type,
      levels: m.neck.levels,
      channels: m.neck.channels,
      extraFrom: m.neck.extraFrom,
      attentionReduction: m.neck.attentionReduction,
    },
    head: { numClasses, numConvs: m.head.numConvs, iouBranch: m.head.iouBranch, priorProbability: 0.01 },
    anchors,
    loss: lossOptions(config),
    postprocess: postprocessOptions(config),
  };
}

export function lossOptions(config: Pick<TrainConfig, 'model' | 'loss'>): LossOptions {
  const l = config.loss;
  return {
    boxLoss: l.box,
    focalAlpha: l.focalAlpha,
    focalGamma: l.focalGamma,
    boxWeight: l.boxWeight,
    iouWeight: config.model.head.iouBranch ? l.iouWeight : 0,
    // Only when it differs from the default, so configs saved before the option read back the same.
    ...(l.iouLossOn === 'all' ? { iouLossOn: 'all' as const } : {}),
    normalization: l.normalization,
  };
}

export function postprocessOptions(config: Pick<TrainConfig, 'model' | 'inference'>): PostprocessOptions {
  const i = config.inference;
  return {
    // Without an IoU branch only the plain class score exists.
    scoreMode: config.model.head.iouBranch ? i.scoreMode : 'cls',
    scoreThreshold: i.scoreThreshold,
    topK: i.topKPerLevel,
    nmsThreshold: i.nmsIou,
    maxDetections: i.maxDetections,
  };
}
