import type { Assigner } from '@bmc/assigners';
import { type Anchors, BoxCoder } from '@bmc/core';
import type { Batch } from '@bmc/data';
import { installLeanTape, leanVariableGrads } from '@bmc/engine';
import { type DetectionLoss, detectionLoss, type ImageTargets, type LossOptions } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { GradientSum } from './gradient-sum.js';
import { applyForTraining } from './lean-forward.js';
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
  /**
   * Images per forward/backward pass; a larger batch is run in chunks of this size and their gradients
   * summed before one optimizer step. 0 or undefined: the whole batch at once. Exact (same loss, same
   * gradients as the whole batch) when the model has no batch-statistics BatchNorm in training mode
   * (the thesis and baseline presets freeze theirs); the point is memory: a pass's activations grow with
   * its images, and tfjs-wasm's heap stops at 4 GiB (memory-plan.ts estimates a step before training).
   */
  microBatch?: number;
  /**
   * How long forward tensors live (default 'lean'): 'lean' frees each layer output once read, runs
   * frozen layers off the gradient tape and frees saved tensors and intermediate gradients during the
   * backward pass (see memory-plan.ts; same gradients); 'tfjs' is tfjs' own `model.apply` +
   * `tf.variableGrads`, which keep everything to the end of the step (for comparison).
   */
  memory?: 'lean' | 'tfjs';
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

/** What a forward/backward pass needs: the step context without the optimizer. */
export type LossContext = Omit<StepContext, 'optimizer' | 'clipGradNorm'>;

/** Loss parts of one forward pass, as numbers. */
export interface LossParts {
  total: number;
  cls: number;
  box: number;
  iou: number;
  numPositives: number;
}

/** Images `from..to` of a batch, sharing its pixel buffer. */
export function sliceBatch(batch: Batch, from: number, to: number): Batch {
  const px = batch.width * batch.height * 3;
  return {
    images: batch.images.subarray(from * px, to * px),
    batchSize: to - from,
    width: batch.width,
    height: batch.height,
    boxes: batch.boxes.slice(from, to),
    labels: batch.labels.slice(from, to),
    ids: batch.ids.slice(from, to),
    indices: batch.indices.slice(from, to),
  };
}

/** Forward (training mode), assignment, loss and backward for one (micro-)batch. */
function lossAndGrads(ctx: LossContext, batch: Batch, variables: tf.Variable[]) {
  const x = tf.tensor4d(batch.images, [batch.batchSize, batch.height, batch.width, 3]);
  let parts: Omit<LossParts, 'total'> = { cls: 0, box: 0, iou: 0, numPositives: 0 };
  let assignMs = 0;
  const lean = (ctx.memory ?? 'lean') === 'lean';
  if (lean) installLeanTape();
  const grad = lean ? leanVariableGrads : tf.variableGrads;
  const { value, grads } = grad(() => {
    const out = headOutputs(
      lean ? applyForTraining(ctx.model, x) : (ctx.model.apply(x, { training: true }) as tf.Tensor[]),
    );
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
  return { parts: { total, ...parts }, grads, assignMs };
}

/**
 * Weight of a share of a batch (a micro-batch, a replica's images) in the whole batch's normaliser: its
 * images for per-image normalisation, its positives for batch normalisation. A share's loss is
 * normalised within the share; sum(weight x share loss) / sum(weights) is the whole batch's loss, and
 * the same holds for the gradients.
 */
export function shareWeight(ctx: Pick<LossContext, 'loss'>, images: number, positives: number): number {
  return (ctx.loss.normalization ?? 'per-image') === 'per-image' ? images : Math.max(1, positives);
}

/** Whole-batch loss parts from weighted shares (see {@link shareWeight}); also returns the divisor. */
export function combineShares(shares: readonly { parts: LossParts; weight: number }[]) {
  const denom = shares.reduce((s, c) => s + c.weight, 0);
  const combine = (key: 'total' | 'cls' | 'box' | 'iou') =>
    shares.reduce((s, c) => s + c.parts[key] * c.weight, 0) / denom;
  const parts: LossParts = {
    total: combine('total'),
    cls: combine('cls'),
    box: combine('box'),
    iou: combine('iou'),
    numPositives: shares.reduce((s, c) => s + c.parts.numPositives, 0),
  };
  return { parts, denom };
}

/** Whole-batch loss and gradients from micro-batches of `size` images, summed with their weights. */
function accumulatedLossAndGrads(ctx: LossContext, batch: Batch, variables: tf.Variable[], size: number) {
  const shares: { parts: LossParts; weight: number }[] = [];
  const sum = new GradientSum(variables);
  let assignMs = 0;
  for (let from = 0; from < batch.batchSize; from += size) {
    const to = Math.min(batch.batchSize, from + size);
    const r = lossAndGrads(ctx, sliceBatch(batch, from, to), variables);
    assignMs += r.assignMs;
    const weight = shareWeight(ctx, to - from, r.parts.numPositives);
    shares.push({ parts: r.parts, weight });
    try {
      sum.add(r.grads, weight);
    } finally {
      tf.dispose(r.grads);
    }
  }
  const { parts, denom } = combineShares(shares);
  return { parts, grads: sum.toTensors(denom), assignMs };
}

/**
 * Loss and gradients of a batch (or of one replica's share of it), in micro-batches when
 * `ctx.microBatch` is smaller than the batch. The caller owns (and disposes) the gradients.
 */
export function batchLossAndGrads(ctx: LossContext, batch: Batch, variables: tf.Variable[]) {
  const micro = ctx.microBatch ?? 0;
  return micro > 0 && micro < batch.batchSize
    ? accumulatedLossAndGrads(ctx, batch, variables, micro)
    : lossAndGrads(ctx, batch, variables);
}

/**
 * Copies of the model's non-trainable weights (BatchNorm moving statistics) taken before a forward pass
 * in training mode, which updates them whatever the loss turns out to be. A skipped step puts them back,
 * so that a NaN batch cannot leave NaN statistics behind.
 */
export function snapshotNonTrainable(model: tf.LayersModel) {
  const weights = model.nonTrainableWeights;
  const copies = weights.map((w) => tf.clone(w.read()));
  return {
    restore(): void {
      weights.forEach((w, i) => {
        w.write(copies[i]!);
      });
      tf.dispose(copies);
    },
    discard(): void {
      tf.dispose(copies);
    },
  };
}

/**
 * Clipping and the optimizer on whole-batch gradients of any task's loss, unless the loss or the gradient
 * norm is not finite (then nothing changes). Disposes `grads`.
 */
export function clipAndApply(
  ctx: Pick<StepContext, 'optimizer' | 'clipGradNorm'>,
  params: Param[],
  loss: number,
  grads: tf.NamedTensorMap,
  lr: number,
): { finite: boolean; gradNorm: number } {
  if (!Number.isFinite(loss)) {
    tf.dispose(grads);
    return { finite: false, gradNorm: Number.NaN };
  }
  const gradNorm = clipGradNorm(grads, ctx.clipGradNorm);
  if (!Number.isFinite(gradNorm)) {
    tf.dispose(grads);
    return { finite: false, gradNorm };
  }
  ctx.optimizer.apply(params, grads, lr);
  tf.dispose(grads);
  return { finite: true, gradNorm };
}

/** {@link clipAndApply} on a detection batch's loss parts. Disposes `grads`. */
export function applyGradients(
  ctx: Pick<StepContext, 'optimizer' | 'clipGradNorm'>,
  params: Param[],
  result: { parts: LossParts; grads: tf.NamedTensorMap; assignMs: number },
  lr: number,
): StepResult {
  const { parts, grads, assignMs } = result;
  const { total, ...rest } = parts;
  const { finite, gradNorm } = clipAndApply(ctx, params, total, grads, lr);
  return { finite, total, ...rest, gradNorm, assignMs };
}

/**
 * Runs one optimizer step of any task so that a non-finite step (or an exception) leaves the
 * BatchNorm statistics as they were (see {@link snapshotNonTrainable}).
 */
export function guardNonTrainable<R extends { finite: boolean }>(model: tf.LayersModel, step: () => R): R {
  const state = snapshotNonTrainable(model);
  let r: R;
  try {
    r = step();
  } catch (e) {
    state.restore();
    throw e;
  }
  if (r.finite) state.discard();
  else state.restore();
  return r;
}

/**
 * One optimizer step: forward (training mode), assignment, loss, backward (in micro-batches when
 * `ctx.microBatch` is smaller than the batch), gradient clipping, optimizer. A non-finite loss changes
 * nothing (weights, optimizer state and BatchNorm statistics stay as they were) and is reported, so the
 * caller can skip the step. Leaves no tensors behind.
 */
export function trainStep(ctx: StepContext, batch: Batch, lr: number): StepResult {
  const params = trainableParams(ctx.model);
  return guardNonTrainable(ctx.model, () => {
    const result = batchLossAndGrads(
      ctx,
      batch,
      params.map((p) => p.variable),
    );
    return applyGradients(ctx, params, result, lr);
  });
}
