import { BACKGROUND, BoxCoder, IGNORE, InvalidInputError } from '@bmc/core';
import { alignedGiouTensor, alignedIouTensor, decodeDeltasTensor } from '@bmc/core/tf';
import * as tf from '@tensorflow/tfjs';
import { bceWithLogits, sigmoidFocalLoss } from './focal-loss.js';

/** Matched-index codes, as torchvision's `Matcher`: @bmc/core's, the ones the assigners write. */
export { BACKGROUND, IGNORE };

/**
 * One image's assignment, from any assigner, as plain arrays: which ground
 * truth each anchor regresses to, or background / ignore. From `@bmc/assigners`:
 * `{ matchedIdxs: result.gtIndex, gtBoxes, gtLabels, weights: result.weights }`.
 */
export interface ImageTargets {
  /** `[A]` per anchor: index into `gtBoxes` (positive), -1 background, -2 ignored (no loss at all). */
  matchedIdxs: ArrayLike<number>;
  /**
   * `[A]` optional soft weight per anchor (OTA's transported units), multiplying a positive
   * anchor's box and IoU loss terms. Absent: 1. The positive count used for normalisation is unchanged.
   */
  weights?: ArrayLike<number>;
  /** `[G, 4]` xyxy ground-truth boxes in input pixels. */
  gtBoxes: ArrayLike<number>;
  /** `[G]` class index of each ground truth, in `0..numClasses-1`. */
  gtLabels: ArrayLike<number>;
}

export type BoxLossType = 'giou' | 'smooth_l1' | 'l1';

export interface LossOptions {
  /** Box loss on positives: GIoU on decoded boxes (default), or smooth-L1 / L1 on the deltas. */
  boxLoss?: BoxLossType;
  /** Smooth-L1 transition point. Default 1/9 (Detectron's RetinaNet; torchvision's `_box_loss` defaults to 1). */
  smoothL1Beta?: number;
  focalAlpha?: number;
  focalGamma?: number;
  /** l1: weight of the box loss. Default 1. */
  boxWeight?: number;
  /** l2: weight of the IoU-branch BCE. Default 1. */
  iouWeight?: number;
  /**
   * Anchors the IoU-branch BCE sums over. 'positives' (default): the positives, target IoU(decoded
   * prediction, assigned box). 'all': every non-ignored anchor, as the thesis's Eq. 1.4 sums over all
   * anchors; background anchors have no assigned box, so their target is 0 (their decoded box overlaps
   * no box it should predict), with the same per-positive normalisation as the class loss.
   */
  iouLossOn?: 'positives' | 'all';
  /**
   * 'per-image' (torchvision): each image's sums divided by max(1, its positives), then averaged over
   * images. 'batch' (mmdetection): all sums divided by max(1, positives in the batch).
   */
  normalization?: 'per-image' | 'batch';
  boxCoderWeights?: readonly [number, number, number, number];
}

export interface HeadOutputTensors {
  /** `[N, A, C]` */
  clsLogits: tf.Tensor;
  /** `[N, A, 4]` */
  boxDeltas: tf.Tensor;
  /** `[N, A, 1]` or `[N, A]`; the IoU loss is computed when present. */
  iouLogits?: tf.Tensor;
}

export interface DetectionLoss {
  /** focal + l1 * box + l2 * iou */
  total: tf.Scalar;
  cls: tf.Scalar;
  box: tf.Scalar;
  /** Present when the outputs carry IoU logits. */
  iou?: tf.Scalar;
  /** Positive anchors in the batch. */
  numPositives: number;
}

/** Identity whose gradient is zero: the IoU target must not pull the box regression. */
const stopGradient = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
}) as (x: tf.Tensor) => tf.Tensor;

/**
 * The detector's loss: sigmoid focal loss over all non-ignored anchors and
 * classes, plus `boxWeight` x box loss and `iouWeight` x BCE(IoU logit,
 * IoU(decoded prediction, assigned box)) over positives (the IoU target is
 * not differentiated). The thesis's Eq. 1.4 sums the BCE over all anchors:
 * `iouLossOn: 'all'` (docs/departures.md). Targets are plain arrays, so any assigner can feed
 * it. Returns scalars that are differentiable w.r.t. the model's weights.
 */
export function detectionLoss(
  outputs: HeadOutputTensors,
  anchors: ArrayLike<number>,
  targets: readonly ImageTargets[],
  options: LossOptions = {},
): DetectionLoss {
  const [n, a, c] = outputs.clsLogits.shape as [number, number, number];
  if (targets.length !== n)
    throw new InvalidInputError(`detectionLoss: ${targets.length} targets for a batch of ${n}`);
  if (anchors.length !== a * 4)
    throw new InvalidInputError(`detectionLoss: ${anchors.length / 4} anchors for ${a} outputs`);
  if (outputs.boxDeltas.shape[1] !== a)
    throw new InvalidInputError('detectionLoss: boxDeltas and clsLogits disagree on A');

  // Plain-array preparation: one-hot class targets, per-anchor weights, positives.
  const clsTarget = new Float32Array(n * a * c);
  const rowWeight = new Float32Array(n * a);
  // Background anchors' weight in the IoU BCE with iouLossOn 'all' (zero for positives and ignored).
  const bgWeight = new Float32Array(n * a);
  const posIndex: number[] = [];
  const posWeight: number[] = [];
  const posAnchors: number[] = [];
  const posBoxes: number[] = [];
  const fgPerImage = targets.map((t, i) => countPositives(t, a, i));
  const fgTotal = fgPerImage.reduce((s, v) => s + v, 0);
  const perImage = (options.normalization ?? 'per-image') === 'per-image';
  targets.forEach((t, i) => {
    const norm = perImage ? 1 / (Math.max(1, fgPerImage[i]!) * n) : 1 / Math.max(1, fgTotal);
    const g = t.gtLabels.length;
    for (let j = 0; j < a; j++) {
      const m = t.matchedIdxs[j]!;
      if (m === IGNORE) continue;
      rowWeight[i * a + j] = norm;
      if (m < 0) {
        bgWeight[i * a + j] = norm;
        continue;
      }
      if (m >= g)
        throw new InvalidInputError(`detectionLoss: image ${i} anchor ${j} matched to gt ${m} of ${g}`);
      const label = t.gtLabels[m]!;
      if (!(label >= 0 && label < c)) {
        throw new InvalidInputError(
          `detectionLoss: image ${i} gt ${m} has label ${label}, expected 0..${c - 1}`,
        );
      }
      clsTarget[(i * a + j) * c + label] = 1;
      posIndex.push(i * a + j);
      posWeight.push(norm * (t.weights ? t.weights[j]! : 1));
      for (let q = 0; q < 4; q++) {
        posAnchors.push(anchors[4 * j + q]!);
        posBoxes.push(t.gtBoxes[4 * m + q]!);
      }
    }
  });
  const boxLoss = options.boxLoss ?? 'giou';
  const coder = new BoxCoder(options.boxCoderWeights ? { weights: options.boxCoderWeights } : {});
  const deltaTargets = boxLoss === 'giou' ? null : coder.encode(posBoxes, posAnchors);
  const p = posIndex.length;

  const scalars = tf.tidy(() => {
    const focal = sigmoidFocalLoss(outputs.clsLogits, tf.tensor3d(clsTarget, [n, a, c]), {
      ...(options.focalAlpha !== undefined ? { alpha: options.focalAlpha } : {}),
      ...(options.focalGamma !== undefined ? { gamma: options.focalGamma } : {}),
    });
    const cls = tf.sum(tf.mul(tf.sum(focal, 2), tf.tensor2d(rowWeight, [n, a]))) as tf.Scalar;
    let box = tf.scalar(0);
    let iou: tf.Scalar | undefined;
    const hasIou = outputs.iouLogits !== undefined;
    if (hasIou) {
      iou =
        options.iouLossOn === 'all'
          ? (tf.sum(
              tf.mul(
                bceWithLogits(tf.reshape(outputs.iouLogits!, [n * a]), tf.zeros([n * a])),
                tf.tensor1d(bgWeight),
              ),
            ) as tf.Scalar)
          : tf.scalar(0);
    }
    if (p > 0) {
      const idx = tf.tensor1d(Int32Array.from(posIndex), 'int32');
      const w = tf.tensor1d(Float32Array.from(posWeight));
      const deltas = tf.gather(tf.reshape(outputs.boxDeltas, [n * a, 4]), idx) as tf.Tensor2D;
      const anchorT = tf.tensor2d(posAnchors, [p, 4]);
      const gtT = tf.tensor2d(posBoxes, [p, 4]);
      const weights = options.boxCoderWeights ?? [1, 1, 1, 1];
      let perBox: tf.Tensor;
      if (boxLoss === 'giou') {
        perBox = tf.sub(1, alignedGiouTensor(decodeDeltasTensor(deltas, anchorT, weights), gtT));
      } else {
        const diff = tf.abs(tf.sub(deltas, tf.tensor2d(deltaTargets!, [p, 4])));
        if (boxLoss === 'l1') {
          perBox = tf.sum(diff, 1);
        } else {
          const beta = options.smoothL1Beta ?? 1 / 9;
          // torch's smooth_l1: 0.5 d^2 / beta below beta, d - beta / 2 above.
          const quad = tf.div(tf.mul(0.5, tf.square(diff)), beta);
          perBox = tf.sum(beta > 0 ? tf.where(tf.less(diff, beta), quad, tf.sub(diff, beta / 2)) : diff, 1);
        }
      }
      box = tf.sum(tf.mul(perBox, w)) as tf.Scalar;
      if (hasIou) {
        const iouLogits = tf.gather(tf.reshape(outputs.iouLogits!, [n * a]), idx);
        const predBoxes = decodeDeltasTensor(stopGradient(deltas) as tf.Tensor2D, anchorT, weights);
        const iouTarget = alignedIouTensor(predBoxes, gtT);
        iou = tf.add(iou!, tf.sum(tf.mul(bceWithLogits(iouLogits, iouTarget), w))) as tf.Scalar;
      }
    }
    let total = tf.add(cls, tf.mul(box, options.boxWeight ?? 1));
    if (iou) total = tf.add(total, tf.mul(iou, options.iouWeight ?? 1));
    return { total: total as tf.Scalar, cls, box, ...(iou ? { iou } : {}) };
  });
  return { ...scalars, numPositives: p };
}

function countPositives(t: ImageTargets, a: number, image: number): number {
  if (t.matchedIdxs.length !== a) {
    throw new InvalidInputError(
      `detectionLoss: image ${image} has ${t.matchedIdxs.length} matched indices for ${a} anchors`,
    );
  }
  if (t.weights && t.weights.length !== a) {
    throw new InvalidInputError(
      `detectionLoss: image ${image} has ${t.weights.length} weights for ${a} anchors`,
    );
  }
  if (t.gtBoxes.length !== t.gtLabels.length * 4) {
    throw new InvalidInputError(
      `detectionLoss: image ${image} has ${t.gtBoxes.length / 4} boxes and ${t.gtLabels.length} labels`,
    );
  }
  let k = 0;
  for (let j = 0; j < a; j++) {
    const m = t.matchedIdxs[j]!;
    if (m >= 0) k++;
    else if (m !== BACKGROUND && m !== IGNORE) {
      throw new InvalidInputError(
        `detectionLoss: image ${image} anchor ${j} has matched index ${m} (expected >= -2)`,
      );
    }
  }
  return k;
}
