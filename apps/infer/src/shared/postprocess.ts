import { type Anchors, argsortDescending, BoxCoder, batchedNms, generateAnchors, nms } from '@bmc/core';
import type { BmcMetadata } from '@bmc/export/metadata';
import type { HeadOutputs, PostprocessOverrides } from './types.js';

/**
 * Detections of one network pass, in network-input pixels.
 * `boxes` `[K, 4]` xyxy, `scores` `[K]`, `classes` `[K]`, highest score first.
 */
export interface RawDetections {
  boxes: Float32Array;
  scores: Float32Array;
  classes: Int32Array;
}

export interface EffectiveNms {
  scoreThreshold: number;
  iouThreshold: number;
  maxDetections: number;
  preNmsTopK: number;
  classAgnostic: boolean;
}

export function effectiveNms(meta: BmcMetadata, o: PostprocessOverrides = {}): EffectiveNms {
  return {
    scoreThreshold: o.scoreThreshold ?? meta.nms.scoreThreshold,
    iouThreshold: o.iouThreshold ?? meta.nms.iouThreshold,
    maxDetections: o.maxDetections ?? meta.nms.maxDetections,
    preNmsTopK: o.preNmsTopK ?? meta.nms.preNmsTopK,
    classAgnostic: meta.nms.classAgnostic,
  };
}

const anchorCache = new Map<string, Anchors>();

/** Anchors for a network input size, cached: every tile of a batch has the same size. */
export function anchorsFor(meta: BmcMetadata, height: number, width: number): Anchors {
  const key = `${JSON.stringify(meta.anchors)}|${height}x${width}`;
  let a = anchorCache.get(key);
  if (!a) {
    if (anchorCache.size > 16) anchorCache.clear();
    a = generateAnchors(meta.anchors, height, width);
    anchorCache.set(key, a);
  }
  return a;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const logit = (p: number) =>
  p <= 0 ? Number.NEGATIVE_INFINITY : p >= 1 ? Number.POSITIVE_INFINITY : Math.log(p / (1 - p));

/**
 * RetinaNet post-processing with the model's score mode, as torchvision's
 * `RetinaNet.postprocess_detections` does it per image: per level keep the
 * `preNmsTopK` best (anchor, class) scores above the threshold, decode only
 * those boxes, clip them to the content area, then NMS (class-aware unless the
 * model says class-agnostic) and keep `maxDetections`.
 *
 * TODO(heads-iou): @bmc/heads-iou is to own this step (isomorphic decode +
 * IoU-aware NMS); its src/ was still empty when this was written. Swap this
 * body for its function once it lands, keeping this signature for callers.
 */
export function postprocess(
  out: HeadOutputs,
  meta: BmcMetadata,
  inputHeight: number,
  inputWidth: number,
  clip: { width: number; height: number },
  overrides: PostprocessOverrides = {},
): RawDetections {
  const anchors = anchorsFor(meta, inputHeight, inputWidth);
  const C = meta.classNames.length;
  const A = anchors.boxes.length / 4;
  if (out.clsLogits.length !== A * C) {
    throw new RangeError(
      `postprocess: cls_logits has ${out.clsLogits.length} values, expected ${A} anchors x ${C} classes for a ${inputWidth}x${inputHeight} input`,
    );
  }
  if (out.boxDeltas.length !== A * 4)
    throw new RangeError(`postprocess: box_deltas has ${out.boxDeltas.length} values, expected ${A * 4}`);
  const useIou = meta.scoreMode === 'sqrt_cls_iou';
  if (useIou && (!out.iouLogits || out.iouLogits.length !== A)) {
    throw new RangeError(`postprocess: score mode ${meta.scoreMode} needs iou_logits with ${A} values`);
  }
  const s = effectiveNms(meta, overrides);
  // sqrt(cls * iou) >= t needs cls >= t^2 (iou <= 1): a cheap pre-filter on the logit.
  const clsLogitMin = logit(useIou ? s.scoreThreshold * s.scoreThreshold : s.scoreThreshold);
  const coder = new BoxCoder({ weights: meta.boxCoder.weights, xformClip: meta.boxCoder.clip });

  const keptFlat: number[] = [];
  const keptScore: number[] = [];
  let levelStart = 0;
  for (let l = 0; l < anchors.levelCounts.length; l++) {
    const levelEnd = levelStart + anchors.levelCounts[l]!;
    const cand: number[] = [];
    const candScore: number[] = [];
    for (let i = levelStart * C; i < levelEnd * C; i++) {
      const z = out.clsLogits[i]!;
      if (z <= clsLogitMin) continue;
      let score = sigmoid(z);
      if (useIou) score = Math.sqrt(score * sigmoid(out.iouLogits![(i / C) | 0]!));
      if (score > s.scoreThreshold) {
        cand.push(i);
        candScore.push(score);
      }
    }
    const order = argsortDescending(candScore);
    const k = Math.min(s.preNmsTopK, order.length);
    for (let j = 0; j < k; j++) {
      keptFlat.push(cand[order[j]!]!);
      keptScore.push(candScore[order[j]!]!);
    }
    levelStart = levelEnd;
  }

  const n = keptFlat.length;
  const boxes = new Float32Array(n * 4);
  const classes = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const flat = keptFlat[j]!;
    const a = (flat / C) | 0;
    classes[j] = flat - a * C;
    coder.decodeRow(out.boxDeltas, a, anchors.boxes, a, boxes, j);
    const o = j * 4;
    boxes[o] = Math.min(Math.max(boxes[o]!, 0), clip.width);
    boxes[o + 1] = Math.min(Math.max(boxes[o + 1]!, 0), clip.height);
    boxes[o + 2] = Math.min(Math.max(boxes[o + 2]!, 0), clip.width);
    boxes[o + 3] = Math.min(Math.max(boxes[o + 3]!, 0), clip.height);
  }
  const scores = Float32Array.from(keptScore);
  const keep = s.classAgnostic
    ? nms(boxes, scores, s.iouThreshold).slice(0, s.maxDetections)
    : batchedNms(boxes, scores, classes, { iouThreshold: s.iouThreshold, maxDetections: s.maxDetections });
  return select({ boxes, scores, classes }, keep);
}

/** Rows `keep` of a detection set, in that order. */
export function select(d: RawDetections, keep: ArrayLike<number>): RawDetections {
  const boxes = new Float32Array(keep.length * 4);
  const scores = new Float32Array(keep.length);
  const classes = new Int32Array(keep.length);
  for (let j = 0; j < keep.length; j++) {
    const i = keep[j]!;
    boxes.set(d.boxes.subarray(i * 4, i * 4 + 4), j * 4);
    scores[j] = d.scores[i]!;
    classes[j] = d.classes[i]!;
  }
  return { boxes, scores, classes };
}
