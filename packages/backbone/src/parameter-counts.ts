/**
 * Parameter counts in PyTorch's convention, so tfjs models compare with torchvision's numbers
 * (`sum(p.numel() for p in model.parameters())`). FLOPs / MACs and mmcv-style counts are
 * `@bmc/metrics`' `modelStats`.
 */
import type * as tf from '@tensorflow/tfjs';

export interface ParameterCounts {
  /** What `sum(p.numel() for p in model.parameters())` gives in PyTorch: conv/dense weights and biases, affine terms of trainable BatchNorm. */
  parameters: number;
  /** Of those, the ones that train (frozen stages excluded). */
  trainable: number;
  /** Running statistics, and every weight of a `FrozenBatchNorm` (buffers in torchvision's `FrozenBatchNorm2d`). */
  buffers: number;
}

/** Parameter counts of a model, in PyTorch's convention so they compare with torchvision's numbers. */
export function countParameters(model: tf.LayersModel): ParameterCounts {
  const counts: ParameterCounts = { parameters: 0, trainable: 0, buffers: 0 };
  for (const layer of model.layers) {
    const frozenBn = layer.getClassName() === 'FrozenBatchNorm';
    for (const w of layer.weights) {
      const n = w.shape.reduce<number>((a, d) => a * (d ?? 1), 1);
      if (frozenBn || /\/moving_(mean|variance)$/.test(w.originalName)) {
        counts.buffers += n;
      } else {
        counts.parameters += n;
        if (w.trainable && layer.trainable) counts.trainable += n;
      }
    }
  }
  return counts;
}
