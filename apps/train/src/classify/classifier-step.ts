import * as tf from '@tensorflow/tfjs';
import { GradientSum } from '../train/gradient-sum.js';
import type { LoopStepResult } from '../train/loop.js';
import type { Optimizer } from '../train/optimizer.js';
import { clipAndApply, guardNonTrainable, trainableParams } from '../train/step.js';

export interface ClassifierStepContext {
  model: tf.LayersModel;
  /** The trainer's optimizer (AdamW / SGD, PyTorch's update rules). */
  optimizer: Optimizer;
  /** Max global gradient norm (0 = no clipping). */
  clipGradNorm: number;
  /**
   * Crops per forward/backward pass; a larger batch runs in chunks whose gradients are summed before
   * one optimizer step (the detector's gradient accumulation). The classifier's BatchNorm uses batch
   * statistics, so these then come from each chunk: a memory trade, not an exact equivalent.
   */
  microBatch?: number;
  /** Label smoothing of the cross-entropy target (0 = none). */
  labelSmoothing?: number;
}

/** One batch of normalised crops `[N, S, S, 3]` (NHWC, flat) and their class indices. */
export interface CropBatch {
  x: Float32Array;
  labels: Int32Array;
  cropSize: number;
}

export interface ClassifierStepResult extends LoopStepResult {
  /** Share of the batch predicted right (training-mode forward pass). */
  accuracy: number;
}

/** Mean softmax cross-entropy of a (micro-)batch, its correct predictions and gradients. */
function lossAndGrads(ctx: ClassifierStepContext, b: CropBatch, variables: tf.Variable[]) {
  const n = b.labels.length;
  const k = ctx.model.outputs[0]!.shape[1] as number;
  const x = tf.tensor4d(b.x, [n, b.cropSize, b.cropSize, 3]);
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(b.labels, 'int32'), k));
  let correct = 0;
  const { value, grads } = tf.variableGrads(() => {
    const logits = ctx.model.apply(x, { training: true }) as tf.Tensor2D;
    const pred = tf.argMax(logits, 1);
    const p = pred.dataSync();
    pred.dispose();
    for (let i = 0; i < n; i++) if (p[i] === b.labels[i]) correct++;
    return tf.losses.softmaxCrossEntropy(y, logits, undefined, ctx.labelSmoothing ?? 0) as tf.Scalar;
  }, variables);
  tf.dispose([x, y]);
  const loss = value.dataSync()[0]!;
  value.dispose();
  return { loss, correct, grads };
}

/** Crops `from..to` of a batch (views, no copy). */
function sliceCrops(b: CropBatch, from: number, to: number): CropBatch {
  const per = b.cropSize * b.cropSize * 3;
  return { x: b.x.subarray(from * per, to * per), labels: b.labels.subarray(from, to), cropSize: b.cropSize };
}

/**
 * One optimizer step of softmax cross-entropy, through the detector trainer's machinery: gradient
 * accumulation over micro-batches (`GradientSum`), global-norm clipping and the optimizer
 * (`clipAndApply`), and a non-finite step that changes nothing, BatchNorm statistics included
 * (`guardNonTrainable`). Leaves no tensor behind.
 */
export function classifierStep(
  ctx: ClassifierStepContext,
  batch: CropBatch,
  lr: number,
): ClassifierStepResult {
  const params = trainableParams(ctx.model);
  const variables = params.map((p) => p.variable);
  const n = batch.labels.length;
  return guardNonTrainable(ctx.model, () => {
    const micro = ctx.microBatch ?? 0;
    let loss: number;
    let correct: number;
    let grads: tf.NamedTensorMap;
    if (micro > 0 && micro < n) {
      // Each chunk's loss is a mean over its crops: weight it by its crops to get the batch mean.
      const sum = new GradientSum(variables);
      loss = 0;
      correct = 0;
      for (let from = 0; from < n; from += micro) {
        const to = Math.min(n, from + micro);
        const r = lossAndGrads(ctx, sliceCrops(batch, from, to), variables);
        loss += r.loss * (to - from);
        correct += r.correct;
        try {
          sum.add(r.grads, to - from);
        } finally {
          tf.dispose(r.grads);
        }
      }
      loss /= n;
      grads = sum.toTensors(n);
    } else {
      ({ loss, correct, grads } = lossAndGrads(ctx, batch, variables));
    }
    const { finite, gradNorm } = clipAndApply(ctx, params, loss, grads, lr);
    return { finite, total: loss, accuracy: correct / n, gradNorm };
  });
}
