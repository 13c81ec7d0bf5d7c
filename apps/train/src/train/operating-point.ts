import type { OperatingPoint } from '@bmc/export';
import type { Evaluation } from './evaluate.js';

/** IoU at which the counting threshold is chosen: the published Table 1.2's operating point. */
export const OPERATING_IOU = 0.5;

/**
 * The counting threshold of a model: the score threshold with the best F1 at IoU 0.5 over an
 * evaluation's detections (the best-F1 sweep of @bmc/metrics, one threshold for all classes),
 * with its precision, recall and F1 there. Undefined when the split gave no true positive (no
 * threshold can be chosen; counting then falls back to the candidate threshold).
 */
export function operatingPointOf(
  ev: Pick<Evaluation, 'report'>,
  step: number,
  split = 'val',
): OperatingPoint | undefined {
  const row = ev.report.bestF1.find((r) => Math.abs(r.iouThr - OPERATING_IOU) < 1e-9);
  if (!row || row.scoreThreshold === null || row.tp === 0) return undefined;
  return {
    scoreThreshold: row.scoreThreshold,
    precision: row.precision,
    recall: row.recall,
    f1: row.f1,
    iou: OPERATING_IOU,
    split,
    step,
  };
}

/** `count at score >= 0.412 (F1 0.931, P 0.950, R 0.913)`, or why there is none. */
export function describeOperatingPoint(op: OperatingPoint | undefined): string {
  if (!op) return 'no counting threshold (no detection matched a cell at IoU 0.5)';
  return `count at score >= ${op.scoreThreshold.toFixed(3)} (F1 ${op.f1.toFixed(3)}, P ${op.precision.toFixed(3)}, R ${op.recall.toFixed(3)})`;
}
