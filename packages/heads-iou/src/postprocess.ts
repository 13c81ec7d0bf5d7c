/**
 * Detection post-processing on plain typed arrays: no TensorFlow.js, no
 * Node APIs, so the inference app runs the same code on onnxruntime outputs
 * in Node and in the browser. Semantics of torchvision's
 * `RetinaNet.postprocess_detections`, with an IoU-aware ranking score.
 */
import { argsortDescending, BoxCoder, batchedNms, InvalidInputError } from '@bmc/core';

/**
 * Ranking score: `cls` = sigmoid(class logit) (RetinaNet); `cls*iou` and
 * `sqrt(cls*iou)` multiply in the predicted IoU (sigmoid of the IoU logit),
 * `sqrt(cls*iou)` (the geometric mean) is bmc's default: the thesis combines the
 * two without fixing the formula (docs/departures.md).
 */
export type ScoreMode = 'cls' | 'cls*iou' | 'sqrt(cls*iou)';
export const SCORE_MODES: readonly ScoreMode[] = ['cls', 'cls*iou', 'sqrt(cls*iou)'];

export interface PostprocessOptions {
  scoreMode?: ScoreMode;
  /** Candidates must score strictly above this (on the ranking score). Default 0.05. */
  scoreThreshold?: number;
  /** Best candidates kept per level before NMS. Default 1000. */
  topK?: number;
  /** Class-aware NMS IoU threshold. Default 0.5. */
  nmsThreshold?: number;
  /** Detections kept per image. Default 100. */
  maxDetections?: number;
  /** `[height, width]`: boxes are clipped to it (torchvision clips to the image). Omit to skip clipping. */
  imageSize?: readonly [number, number];
  /** BoxCoder weights; RetinaNet's (1, 1, 1, 1) by default. */
  boxCoderWeights?: readonly [number, number, number, number];
  /**
   * Keep boxes that clipping squeezed to zero width or height, as torchvision's RetinaNet does
   * (its output then holds boxes that are no detection). Default false: boxes whose width or
   * height is not above {@link MIN_BOX_SIZE} are dropped before NMS.
   */
  keepEmptyBoxes?: boolean;
}

/**
 * Smallest width and height (pixels) of a kept detection: torchvision's `remove_small_boxes`
 * threshold in its two-stage detectors (1e-2), and the precision COCO results files are written
 * with, so no written box has zero width or height.
 */
export const MIN_BOX_SIZE = 0.01;

/** One image's raw head outputs, flattened in anchor order (level, y, x, anchor). */
export interface ImageHeadOutputs {
  /** `[A, C]` class logits. */
  clsLogits: ArrayLike<number>;
  /** `[A, 4]` deltas. */
  boxDeltas: ArrayLike<number>;
  /** `[A]` IoU logits; required by the IoU score modes. */
  iouLogits?: ArrayLike<number>;
}

export interface AnchorSet {
  /** `[A, 4]` xyxy anchors. */
  boxes: ArrayLike<number>;
  /** Anchors per level, in order. */
  levelCounts: ArrayLike<number>;
}

export interface Detections {
  /** `[D, 4]` xyxy boxes in input pixels. */
  boxes: Float32Array;
  /** `[D]` ranking scores, descending. */
  scores: Float32Array;
  /** `[D]` class indices. */
  labels: Int32Array;
}

/**
 * Per level: score every (anchor, class) pair, keep those above the
 * threshold, the top-k of them; decode and clip those boxes; then
 * class-aware NMS over all levels and keep the best `maxDetections`.
 */
export function postprocessDetections(
  outputs: ImageHeadOutputs,
  anchors: AnchorSet,
  numClasses: number,
  options: PostprocessOptions = {},
): Detections {
  const mode = options.scoreMode ?? 'cls';
  if (!SCORE_MODES.includes(mode)) {
    throw new InvalidInputError(
      `postprocess: unknown scoreMode '${mode}' (expected ${SCORE_MODES.join(', ')})`,
    );
  }
  const threshold = options.scoreThreshold ?? 0.05;
  const topK = options.topK ?? 1000;
  const numAnchors = anchors.boxes.length / 4;
  const c = numClasses;
  if (!Number.isInteger(numAnchors))
    throw new InvalidInputError('postprocess: anchors length is not a multiple of 4');
  if (outputs.clsLogits.length !== numAnchors * c) {
    throw new InvalidInputError(
      `postprocess: clsLogits has ${outputs.clsLogits.length} values, expected ${numAnchors} anchors x ${c} classes`,
    );
  }
  if (outputs.boxDeltas.length !== numAnchors * 4) {
    throw new InvalidInputError(
      `postprocess: boxDeltas has ${outputs.boxDeltas.length} values, expected ${numAnchors * 4}`,
    );
  }
  const iou = outputs.iouLogits;
  if (mode !== 'cls' && (!iou || iou.length !== numAnchors)) {
    throw new InvalidInputError(`postprocess: scoreMode '${mode}' needs iouLogits with ${numAnchors} values`);
  }
  let total = 0;
  for (let l = 0; l < anchors.levelCounts.length; l++) total += anchors.levelCounts[l]!;
  if (total !== numAnchors) {
    throw new InvalidInputError(`postprocess: level counts sum to ${total}, anchors has ${numAnchors}`);
  }
  const coder = new BoxCoder(options.boxCoderWeights ? { weights: options.boxCoderWeights } : {});
  const keptAnchor: number[] = [];
  const keptScore: number[] = [];
  const keptLabel: number[] = [];
  let start = 0;
  for (let l = 0; l < anchors.levelCounts.length; l++) {
    const end = start + anchors.levelCounts[l]!;
    const idx: number[] = [];
    const sc: number[] = [];
    for (let j = start; j < end; j++) {
      // The class score a pair needs to pass: t (cls), t / iou (cls*iou), t^2 / iou (sqrt), so most
      // pairs are rejected on the raw logit without a sigmoid. The exact test follows below.
      const q = mode === 'cls' ? 1 : sigmoid(iou![j]!);
      const needed =
        mode === 'cls' ? threshold : mode === 'cls*iou' ? threshold / q : (threshold * threshold) / q;
      if (needed >= 1) continue;
      const logitBound = needed <= 0 ? Number.NEGATIVE_INFINITY : Math.log(needed / (1 - needed)) - 1e-6;
      for (let k = 0; k < c; k++) {
        const logit = outputs.clsLogits[j * c + k]!;
        if (!(logit > logitBound)) continue;
        const p = sigmoid(logit);
        const score = mode === 'cls' ? p : mode === 'cls*iou' ? p * q : Math.sqrt(p * q);
        if (score > threshold) {
          idx.push(j * c + k);
          sc.push(score);
        }
      }
    }
    const order = topKOrder(sc, topK);
    for (let j = 0; j < order.length; j++) {
      const flat = idx[order[j]!]!;
      keptAnchor.push(Math.floor(flat / c));
      keptLabel.push(flat % c);
      keptScore.push(sc[order[j]!]!);
    }
    start = end;
  }

  const m = keptAnchor.length;
  let boxes = new Float32Array(m * 4);
  for (let j = 0; j < m; j++)
    coder.decodeRow(outputs.boxDeltas, keptAnchor[j]!, anchors.boxes, keptAnchor[j]!, boxes, j);
  if (options.imageSize) {
    const [h, w] = options.imageSize;
    for (let j = 0; j < m * 4; j += 4) {
      boxes[j] = clamp(boxes[j]!, w);
      boxes[j + 1] = clamp(boxes[j + 1]!, h);
      boxes[j + 2] = clamp(boxes[j + 2]!, w);
      boxes[j + 3] = clamp(boxes[j + 3]!, h);
    }
  }
  // A box squeezed to (nearly) zero width or height by clipping (every box of a 1x1 image, boxes
  // wholly outside the content area) is no detection: drop it before NMS, keeping the order.
  let n = 0;
  for (let j = 0; j < m; j++) {
    const w = boxes[4 * j + 2]! - boxes[4 * j]!;
    const h = boxes[4 * j + 3]! - boxes[4 * j + 1]!;
    if (!options.keepEmptyBoxes && !(w > MIN_BOX_SIZE && h > MIN_BOX_SIZE)) continue;
    if (n !== j) {
      boxes.copyWithin(4 * n, 4 * j, 4 * j + 4);
      keptScore[n] = keptScore[j]!;
      keptLabel[n] = keptLabel[j]!;
    }
    n++;
  }
  if (n < m) {
    boxes = boxes.slice(0, 4 * n);
    keptScore.length = n;
    keptLabel.length = n;
  }
  const keep = batchedNms(boxes, keptScore, keptLabel, {
    iouThreshold: options.nmsThreshold ?? 0.5,
    maxDetections: options.maxDetections ?? 100,
  });
  const out: Detections = {
    boxes: new Float32Array(keep.length * 4),
    scores: new Float32Array(keep.length),
    labels: new Int32Array(keep.length),
  };
  keep.forEach((k, j) => {
    out.boxes.set(boxes.subarray(4 * k, 4 * k + 4), 4 * j);
    out.scores[j] = keptScore[k]!;
    out.labels[j] = keptLabel[k]!;
  });
  return out;
}

/** A batch's outputs `[N, A, C]`, `[N, A, 4]`, `[N, A, 1]` as flat arrays: one `Detections` per image. */
export function postprocessBatch(
  outputs: { clsLogits: Float32Array; boxDeltas: Float32Array; iouLogits?: Float32Array },
  batchSize: number,
  anchors: AnchorSet,
  numClasses: number,
  options: PostprocessOptions = {},
): Detections[] {
  const a = anchors.boxes.length / 4;
  const result: Detections[] = [];
  for (let n = 0; n < batchSize; n++) {
    result.push(
      postprocessDetections(
        {
          clsLogits: outputs.clsLogits.subarray(n * a * numClasses, (n + 1) * a * numClasses),
          boxDeltas: outputs.boxDeltas.subarray(n * a * 4, (n + 1) * a * 4),
          ...(outputs.iouLogits ? { iouLogits: outputs.iouLogits.subarray(n * a, (n + 1) * a) } : {}),
        },
        anchors,
        numClasses,
        options,
      ),
    );
  }
  return result;
}

/**
 * Positions of the `k` largest values, by descending value, ties in index order (as a stable full
 * sort would give). A selection pass first: with IoU-aware scores a level can have a million
 * candidates above the threshold, and sorting them all would dominate post-processing.
 */
function topKOrder(values: number[], k: number): Int32Array {
  if (values.length <= k) return argsortDescending(values);
  if (k <= 0) return new Int32Array(0);
  const kth = kthLargest(Float64Array.from(values), k);
  const picked: number[] = [];
  for (let i = 0; i < values.length; i++) if (values[i]! > kth) picked.push(i);
  for (let i = 0; i < values.length && picked.length < k; i++) if (values[i] === kth) picked.push(i);
  return argsortDescending(values, picked);
}

/** The k-th largest value (1-based) by in-place quickselect (Hoare partition, median of three). */
function kthLargest(a: Float64Array, k: number): number {
  const target = a.length - k; // index in ascending order
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >> 1;
    const x = a[lo]!;
    const y = a[mid]!;
    const z = a[hi]!;
    const pivot = Math.max(Math.min(x, y), Math.min(Math.max(x, y), z)); // median of three
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function clamp(v: number, hi: number): number {
  return Math.min(Math.max(v, 0), hi);
}
