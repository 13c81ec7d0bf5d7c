import { type Anchors, generateAnchors, nms } from '@bmc/core';
import type { BmcMetadata } from '@bmc/export/metadata';
import { postprocessDetections } from '@bmc/heads-iou/postprocess';
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
  topK: number;
  classAgnostic: boolean;
}

/** The model's post-processing settings (from its metadata) with per-call overrides applied. */
export function effectiveNms(meta: BmcMetadata, o: PostprocessOverrides = {}): EffectiveNms {
  return {
    scoreThreshold: o.scoreThreshold ?? meta.nms.scoreThreshold,
    iouThreshold: o.iouThreshold ?? meta.nms.nmsThreshold,
    maxDetections: o.maxDetections ?? meta.nms.maxDetections,
    topK: o.topK ?? meta.nms.topK,
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

/**
 * One network pass's outputs -> detections, with the model's score mode and
 * NMS settings: @bmc/heads-iou's `postprocessDetections` (torchvision's
 * RetinaNet post-processing with the IoU-aware score), on anchors generated
 * from the metadata for this input size. Boxes are clipped to the content area
 * (`clip`), not the padded input.
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
  const s = effectiveNms(meta, overrides);
  const det = postprocessDetections(out, anchors, meta.classNames.length, {
    scoreMode: meta.scoreMode,
    scoreThreshold: s.scoreThreshold,
    topK: s.topK,
    nmsThreshold: s.iouThreshold,
    maxDetections: s.maxDetections,
    imageSize: [clip.height, clip.width],
    boxCoderWeights: meta.boxCoder.weights,
  });
  const d: RawDetections = { boxes: det.boxes, scores: det.scores, classes: det.labels };
  // heads-iou's NMS is class-aware; a class-agnostic model gets one more pass across classes.
  return s.classAgnostic ? select(d, nms(d.boxes, d.scores, s.iouThreshold)) : d;
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
