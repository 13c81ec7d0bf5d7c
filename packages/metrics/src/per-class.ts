import type { CocoEvalResult } from './coco-eval.js';
import { iouIndex } from './params.js';

export interface ClassAp {
  categoryId: number;
  name: string;
  /** Non-crowd ground truths of this category (area 'all'). */
  numGt: number;
  /** AP over IoU 0.50:0.95 (area all, largest maxDets); null when the category has no GT (-1 in pycocotools). */
  ap: number | null;
  ap50: number | null;
  ap75: number | null;
  /** Recall at the largest maxDets averaged over IoU thresholds. */
  ar: number | null;
}

function meanOver(values: number[]): number | null {
  const ok = values.filter((v) => v > -1);
  return ok.length ? ok.reduce((s, v) => s + v, 0) / ok.length : null;
}

/** AP of each category along the K axis (class-agnostic evaluation: one row, "all"). */
export function perClassAp(result: CocoEvalResult): ClassAp[] {
  const [T, R, K, A, M] = result.counts;
  const m = M - 1;
  const t50 = iouIndex(result.params.iouThrs, 0.5);
  const t75 = iouIndex(result.params.iouThrs, 0.75);
  const rows: ClassAp[] = [];
  for (let k = 0; k < K; k++) {
    const prec = (ts: number[]) => {
      const v: number[] = [];
      for (const t of ts)
        for (let r = 0; r < R; r++) v.push(result.precision[(((t * R + r) * K + k) * A + 0) * M + m]!);
      return meanOver(v);
    };
    const all = Array.from({ length: T }, (_, t) => t);
    const rec: number[] = [];
    for (let t = 0; t < T; t++) rec.push(result.recall[((t * K + k) * A + 0) * M + m]!);
    rows.push({
      categoryId: result.params.useCats ? result.catIds[k]! : -1,
      name: result.catNames[k]!,
      numGt: result.evaluation.categories[k]!.numGt[0]!,
      ap: prec(all),
      ap50: t50 >= 0 ? prec([t50]) : null,
      ap75: t75 >= 0 ? prec([t75]) : null,
      ar: meanOver(rec),
    });
  }
  return rows;
}

/** AP (area all, largest maxDets, mean over categories with GT) at chosen IoUs, e.g. Table 1.3's 0.5/0.75/0.9. */
export function apAtIous(
  result: CocoEvalResult,
  ious: readonly number[] = [0.5, 0.75, 0.9],
): Record<string, number | null> {
  const [, R, K, A, M] = result.counts;
  const out: Record<string, number | null> = {};
  for (const iou of ious) {
    const t = iouIndex(result.params.iouThrs, iou);
    if (t < 0) throw new RangeError(`apAtIous: IoU ${iou} is not one of the evaluated thresholds`);
    const v: number[] = [];
    for (let r = 0; r < R; r++) {
      for (let k = 0; k < K; k++) v.push(result.precision[(((t * R + r) * K + k) * A + 0) * M + M - 1]!);
    }
    out[`AP${Math.round(iou * 100)}`] = meanOver(v);
  }
  return out;
}
