import type { CocoEvalResult } from './coco-eval.js';
import { iouIndex } from './params.js';

/** A precision-recall curve at one IoU: COCO's interpolated precision at its recall points. */
export interface PrCurve {
  iouThr: number;
  /** Category id, or null for the mean over categories. */
  categoryId: number | null;
  label: string;
  /** `[R]` recall points (0:0.01:1 by default). */
  recall: number[];
  /** `[R]` interpolated precision; 0 past the highest recall reached. */
  precision: number[];
  /** Mean of `precision` (COCO AP at this IoU); null when there is no ground truth. */
  ap: number | null;
}

export interface PrCurveOptions {
  /** A category id to plot alone; default the mean over categories that have ground truth. */
  categoryId?: number;
  areaLabel?: string;
  maxDets?: number;
}

/** PR curves at the given IoU thresholds, from the accumulated precision array. */
export function prCurves(
  result: CocoEvalResult,
  ious: readonly number[] = [0.5, 0.75, 0.9],
  options: PrCurveOptions = {},
): PrCurve[] {
  const p = result.params;
  const [, R, K, A, M] = result.counts;
  const a = p.areaRng.findIndex((x) => x.label === (options.areaLabel ?? 'all'));
  const m = options.maxDets === undefined ? M - 1 : p.maxDets.indexOf(options.maxDets);
  if (a < 0 || m < 0) throw new RangeError('prCurves: unknown area range or maxDets');
  let ks = Array.from({ length: K }, (_, k) => k);
  if (options.categoryId !== undefined) {
    const k = Array.from(result.catIds).indexOf(options.categoryId);
    if (k < 0 || !p.useCats)
      throw new RangeError(`prCurves: category ${options.categoryId} was not evaluated`);
    ks = [k];
  }
  return ious.map((iou) => {
    const t = iouIndex(p.iouThrs, iou);
    if (t < 0) throw new RangeError(`prCurves: IoU ${iou} is not one of the evaluated thresholds`);
    const precision: number[] = [];
    let any = false;
    for (let r = 0; r < R; r++) {
      let s = 0;
      let n = 0;
      for (const k of ks) {
        const v = result.precision[(((t * R + r) * K + k) * A + a) * M + m]!;
        if (v > -1) {
          s += v;
          n++;
        }
      }
      any ||= n > 0;
      precision.push(n ? s / n : 0);
    }
    const ap = any ? precision.reduce((x, y) => x + y, 0) / R : null;
    return {
      iouThr: p.iouThrs[t]!,
      categoryId: options.categoryId ?? null,
      label: `IoU=${iou.toFixed(2)}`,
      recall: Array.from(p.recThrs),
      precision,
      ap,
    };
  });
}
