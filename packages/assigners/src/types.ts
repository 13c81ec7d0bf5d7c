import type { NumericArray } from '@bmc/core';

/** The assignment codes (background, ignore) are @bmc/core's, shared with the detection loss. */
export { BACKGROUND, IGNORE } from '@bmc/core';

/**
 * What every assigner reads. One shape for all four, so a training loop switches
 * assigner by config; the static ones (MaxIoU, ATSS) ignore the prediction fields.
 */
export interface AssignInput {
  /** `[N, 4]` xyxy anchor boxes in input pixels, in the order the head flattens its outputs. */
  anchors: NumericArray;
  /**
   * Anchors per pyramid level (`sum === N`), level order. ATSS and PAA pick
   * candidates per level and OTA scales its centre region by the level's
   * stride; without it the whole set counts as one level.
   */
  levelCounts?: ArrayLike<number>;
  /**
   * Stride in pixels of each level (OTA's centre region). Inferred from the
   * anchor grid (smallest positive gap between anchor centres) when absent.
   */
  levelStrides?: ArrayLike<number>;
  /** `[G, 4]` xyxy ground-truth boxes. `G = 0` is allowed: everything is background. */
  gtBoxes: NumericArray;
  /** `[G]` class index of each ground truth, `0 <= label < C`. */
  gtLabels: ArrayLike<number>;
  /**
   * `[N, C]` row-major class probabilities (after the sigmoid) from the
   * network's current forward pass. Required by PAA and OTA.
   */
  clsProbs?: NumericArray;
  /** `[N, 4]` xyxy boxes decoded from the network's current regression output. Required by PAA and OTA. */
  predBoxes?: NumericArray;
}

/** The outcome for every anchor; the same type whichever assigner produced it. */
export interface AssignResult {
  /** Number of ground truths `G` the result refers to. */
  numGts: number;
  /** `[N]` index of the assigned ground truth, or {@link BACKGROUND} / {@link IGNORE}. */
  gtIndex: Int32Array;
  /** `[N]` class target: `gtLabels[gtIndex]` for positives, else the same negative code as `gtIndex`. */
  labels: Int32Array;
  /**
   * `[N]` IoU of the compared box with the assigned ground truth, 0 for
   * non-positives. Which box is compared is given by `iouOf`.
   */
  iou: Float32Array;
  /** Whether `iou` is measured on the anchor (MaxIoU, ATSS) or on the predicted box (PAA, OTA). */
  iouOf: 'anchor' | 'prediction';
  /**
   * `[N]` optional soft weight per anchor. Only OTA fills it: the transport
   * it received from its supplier, rescaled so that each supplier's largest
   * delivery is 1 (the official code's `assigned_units`).
   */
  weights?: Float32Array;
  /** Number of anchors with `gtIndex >= 0`. */
  numPositives: number;
}

/** Every assigner: a pure function of its input (no hidden state, deterministic). */
export interface Assigner {
  readonly name: 'maxiou' | 'atss' | 'paa' | 'ota';
  /** True when `assign` needs `clsProbs` and `predBoxes`. */
  readonly needsPredictions: boolean;
  assign(input: AssignInput): AssignResult;
}
