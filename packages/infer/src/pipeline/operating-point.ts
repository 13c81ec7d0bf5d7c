import type { BmcMetadata, OperatingPoint } from '@bmc/export/metadata';
import type { DetectResult } from './types.js';

/**
 * Where a counting threshold came from: the caller (`--score`, `?score=`), the operating point the
 * model carries, or, for a file exported without one, the candidate threshold used for AP.
 */
export type ThresholdSource = 'option' | 'operating-point' | 'candidates';

export interface CountingThreshold {
  /** Count detections with `score >= scoreThreshold`. */
  scoreThreshold: number;
  source: ThresholdSource;
  /** The model's operating point, when it has one (also when an option overrides it). */
  operatingPoint?: OperatingPoint;
}

/**
 * The threshold counts, drawn boxes and crops use: `override` when given, else the model's
 * operating point (best F1 on validation, chosen by training), else the candidate threshold
 * `nms.scoreThreshold` (models exported before operating points were recorded: every candidate
 * counts, as before). COCO results for AP do not go through this: they keep every candidate.
 */
export function countingThreshold(meta: BmcMetadata, override?: number): CountingThreshold {
  const op = meta.operatingPoint ? { operatingPoint: meta.operatingPoint } : {};
  if (override !== undefined) return { scoreThreshold: override, source: 'option', ...op };
  if (meta.operatingPoint)
    return { scoreThreshold: meta.operatingPoint.scoreThreshold, source: 'operating-point', ...op };
  return { scoreThreshold: meta.nms.scoreThreshold, source: 'candidates' };
}

/** One line saying which threshold counts use and why; `option` names the override (e.g. '--score'). */
export function describeCountingThreshold(t: CountingThreshold, option = 'the caller'): string {
  const s = t.scoreThreshold.toFixed(3);
  if (t.source === 'option') return `score >= ${s} (set by ${option})`;
  if (t.source === 'operating-point') {
    const p = t.operatingPoint!;
    return (
      `score >= ${s} (the model's operating point: best F1 ${p.f1.toFixed(3)} at IoU ${p.iou} on ` +
      `${p.split} at step ${p.step}, precision ${p.precision.toFixed(3)}, recall ${p.recall.toFixed(3)})`
    );
  }
  return (
    `score > ${s} (the model carries no operating point, so every candidate counts, up to the ` +
    `max-detections cap; re-export it with a current bmc or pass ${option === 'the caller' ? 'a score threshold' : option})`
  );
}

/** The detections with `score >= scoreThreshold` (they are sorted by score, highest first). */
export function atThreshold(result: DetectResult, scoreThreshold: number): DetectResult {
  return { ...result, detections: result.detections.filter((d) => d.score >= scoreThreshold) };
}
