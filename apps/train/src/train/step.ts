import type { Assigner } from '@bmc/assigners';
import { type Anchors, BoxCoder } from '@bmc/core';
import type { Batch } from '@bmc/data';
import { type DetectionLoss, detectionLoss, type ImageTargets, type LossOptions } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import type { Optimizer } from './optimizer.js';
import { clipGradNorm, type Param } from './sgd.js';

export interface StepContext {
  model: tf.LayersModel;
  assigner: Assigner;
  /** Anchors for the batch's input size, in head-output order. */
  anchors: Anchors;
  /** Stride of each anchor level (OTA's centre region). */
  strides: number[];
  numClasses: number;
  loss: LossOptions;
  optimizer: Optimizer;
  clipGradNorm: number;
}

export interface StepResult {
  /** False when the loss was NaN/Inf: no weight was changed. */
  finite: boolean;
  total: number;
  cls: number;
  box: number;
  iou: number;
  numPositives: number;
  gradNorm: number;
  /** Milliseconds spent in assignment (reading predictions included). */
  assignMs: number;
}

/**
 * Trainable parameters of a model (frozen layers contribute none), keyed by
 * the weight's original name (`backbone.body.conv1/kernel`), which checkpoints
 * also use.
 */
export function trainableParams(model: tf.LayersModel): Param[] {
  const params = model.trainableWeights.map((w) => ({
    key: w.originalName,
    variable: w.read() as tf.Variable,
  }));
  if (new Set(params.map((p) => p.key)).size !== params.length) {
    throw new Error('trainableParams: weight names are not unique');
  }
  return params;
}

/**
 * Assignment for each image of a batch. Dynamic assigners (PAA, OTA) see the
 * current predictions: class probabilities and decoded boxes, read from the
 * forward pass being differentiated (reading values does not touch the tape).
 */
export function assignBatch(
  ctx: Pick<StepContext, 'assigner' | 'anchors' | 'strides' | 'numClasses'>,
  batch: Pick<Batch, 'boxes' | 'labels' | 'batchSize'>,
  clsLogits: tf.Tensor,
  boxDeltas: tf.Tensor,
): ImageTargets[] {
  const a = ctx.anchors.boxes.length / 4;
  const c = ctx.numClasses;
  let probs: Float32Array | undefined;
  let deltas: Float32Array | undefined;
  if (ctx.assigner.needsPredictions) {
    const p = tf.sigmoid(clsLogits);
    probs = p.dataSync() as Float32Array;
    p.dispose();
    deltas = boxDeltas.dataSync() as Float32Array;
  }
  const coder = new BoxCoder();
  const targets: ImageTargets[] = [];
  for (let i = 0; i < batch.batchSize; i++) {
    const gtBoxes = batch.boxes[i]!;
    const gtLabels = batch.labels[i]!;
    const predictions =
      probs && deltas
        ? {
            clsProbs: probs.subarray(i * a * c, (i + 1) * a * c),
            predBoxes: coder.decode(deltas.subarray(i * a * 4, (i + 1) * a * 4), ctx.anchors.boxes),
          }
        : {};
    const r = ctx.assigner.assign({
      anchors: ctx.anchors.boxes,
      levelCounts: ctx.anchors.levelCounts,
      levelStrides: ctx.strides,
      gtBoxes,
      gtLabels,
      ...predictions,
    });
    targets.push({ matchedIdxs: r.gtIndex, gtBoxes, gtLabels, ...(r.weights ? { weights: r.weights } : {}) });
  }
  return targets;
}

/** Splits the model's outputs into the loss's named inputs. */
export function headOutputs(outputs: tf.Tensor | tf.Tensor[]) {
  const [clsLogits, boxDeltas, iouLogits] = Array.isArray(outputs) ? outputs : [outputs];
  return { clsLogits: clsLogits!, boxDeltas: boxDeltas!, ...(iouLogits ? { iouLogits } : {}) };
}

/**
 * One optimizer step: forward (training mode), assignment, loss, backward,
 * gradient clipping, SGD. A non-finite loss changes nothing and is reported,
 * so the caller can skip the step. Leaves no tensors behind.
 */
export function trainStep(ctx: StepContext, batch: Batch, lr: number): StepResult {
  const params = trainableParams(ctx.model);
  const variables = params.map((p) => p.variable);
  const x = tf.tensor4d(batch.images, [batch.batchSize, batch.height, batch.width, 3]);
  let parts: { cls: number; box: number; iou: number; numPositives: number } = {
    cls: 0,
    box: 0,
    iou: 0,
    numPositives: 0,
  };
  let assignMs = 0;
  const { value, grads } = tf.variableGrads(() => {
    const out = headOutputs(ctx.model.apply(x, { training: true }) as tf.Tensor[]);
    const t0 = performance.now();
    const targets = assignBatch(ctx, batch, out.clsLogits, out.boxDeltas);
    assignMs = performance.now() - t0;
    const loss: DetectionLoss = detectionLoss(out, ctx.anchors.boxes, targets, ctx.loss);
    parts = {
      cls: loss.cls.dataSync()[0]!,
      box: loss.box.dataSync()[0]!,
      iou: loss.iou ? loss.iou.dataSync()[0]! : 0,
      numPositives: loss.numPositives,
    };
    return loss.total;
  }, variables);
  x.dispose();
  const total = value.dataSync()[0]!;
  value.dispose();
  if (!Number.isFinite(total)) {
    tf.dispose(grads);
    return { finite: false, total, ...parts, gradNorm: Number.NaN, assignMs };
  }
  const gradNorm = clipGradNorm(grads, ctx.clipGradNorm);
  if (!Number.isFinite(gradNorm)) {
    tf.dispose(grads);
    return { finite: false, total, ...parts, gradNorm, assignMs };
  }
  ctx.optimizer.apply(params, grads, lr);
  tf.dispose(grads);
  return { finite: true, total, ...parts, gradNorm, assignMs };
}
