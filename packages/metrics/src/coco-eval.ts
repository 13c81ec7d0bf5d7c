import { InvalidInputError } from '@bmc/core';
import { type Accumulated, accumulate } from './accumulate.js';
import {
  type DetectionIndex,
  type DetectionIndexOptions,
  type GroundTruthIndex,
  indexDetections,
  indexGroundTruth,
} from './coco-data.js';
import type { CocoDetection, CocoGroundTruth } from './coco-types.js';
import { evaluateImages, type ImageEvaluation } from './evaluate-images.js';
import { type AreaRange, defaultParams, type EvalParams } from './params.js';
import { summarizeStats } from './summarize.js';

export interface CocoEvalOptions extends DetectionIndexOptions {
  /** Pool all categories into one (pycocotools `params.useCats = 0`). Default false. */
  classAgnostic?: boolean;
  iouThrs?: ArrayLike<number>;
  recThrs?: ArrayLike<number>;
  maxDets?: readonly number[];
  areaRanges?: readonly AreaRange[];
  /** Evaluate only these image ids (pycocotools `params.imgIds`). */
  imgIds?: readonly number[];
  /** Evaluate only these category ids (pycocotools `params.catIds`). */
  catIds?: readonly number[];
}

export interface CocoEvalResult extends Accumulated {
  params: EvalParams;
  /** Evaluated image ids, ascending. */
  imgIds: Float64Array;
  /** Category ids along the K axis; for class-agnostic evaluation K = 1 and this lists the pooled ids. */
  catIds: Float64Array;
  /** Names for `catIds` (class-agnostic: one entry, "all"). */
  catNames: string[];
  /** pycocotools' 12 summary numbers (see `STAT_NAMES`). */
  stats: number[];
  /** Per-detection outcomes, for the best-F1 sweep and diagnostics. */
  evaluation: ImageEvaluation;
}

function isDetectionIndex(x: unknown): x is DetectionIndex {
  return (
    x !== null &&
    typeof x === 'object' &&
    !Array.isArray(x) &&
    (x as DetectionIndex).score instanceof Float64Array
  );
}

function resolveParams(o: CocoEvalOptions): EvalParams {
  const p = defaultParams();
  if (o.iouThrs) p.iouThrs = Float64Array.from(o.iouThrs);
  if (o.recThrs) p.recThrs = Float64Array.from(o.recThrs);
  // pycocotools sorts maxDets in evaluate().
  if (o.maxDets) p.maxDets = [...o.maxDets].sort((a, b) => a - b);
  if (o.areaRanges)
    p.areaRng = o.areaRanges.map((a) => ({ label: a.label, range: [a.range[0], a.range[1]] }));
  p.useCats = !o.classAgnostic;
  if (p.maxDets.length === 0 || p.maxDets.some((m) => !Number.isInteger(m) || m < 1)) {
    throw new InvalidInputError(`maxDets: expected positive integers, got ${JSON.stringify(o.maxDets)}`);
  }
  return p;
}

function selectIndices(all: Float64Array, wanted: readonly number[] | undefined, what: string): Int32Array {
  if (!wanted) return Int32Array.from(all, (_, i) => i);
  const pos = new Map<number, number>();
  all.forEach((id, i) => {
    pos.set(id, i);
  });
  const out = new Set<number>();
  wanted.forEach((id, j) => {
    const i = pos.get(id);
    if (i === undefined) throw new InvalidInputError(`${what}[${j}]: id ${id} is not in the ground truth`);
    out.add(i);
  });
  return Int32Array.from([...out].sort((a, b) => a - b));
}

/**
 * COCO bbox evaluation with pycocotools' semantics (`COCOeval(gt, dt, 'bbox')`,
 * `evaluate(); accumulate(); summarize()`): same matching, same tie-breaking, same
 * interpolation, same -1 conventions, float64 throughout.
 *
 * Inputs are parsed COCO JSON objects (ground truth and results list) or indexes
 * already built with `indexGroundTruth` / `indexDetections`.
 */
export function evaluateCoco(
  groundTruth: CocoGroundTruth | GroundTruthIndex,
  results: readonly CocoDetection[] | DetectionIndex,
  options: CocoEvalOptions = {},
): CocoEvalResult {
  const gt =
    groundTruth !== null && typeof groundTruth === 'object' && 'annIds' in groundTruth
      ? groundTruth
      : indexGroundTruth(groundTruth as CocoGroundTruth);
  const dt = isDetectionIndex(results)
    ? results
    : indexDetections(results as readonly CocoDetection[], gt, options);
  const p = resolveParams(options);
  const imageIdx = selectIndices(gt.imgIds, options.imgIds, 'imgIds');
  const categoryIdx = selectIndices(gt.catIds, options.catIds, 'catIds');
  const evaluation = evaluateImages(gt, dt, p, imageIdx, categoryIdx);
  const acc = accumulate(evaluation.categories, p);
  const catIds = Float64Array.from(categoryIdx, (k) => gt.catIds[k]!);
  return {
    ...acc,
    params: p,
    imgIds: Float64Array.from(imageIdx, (i) => gt.imgIds[i]!),
    catIds,
    catNames: p.useCats ? Array.from(categoryIdx, (k) => gt.catNames[k]!) : ['all'],
    stats: summarizeStats(acc, p),
    evaluation,
  };
}
