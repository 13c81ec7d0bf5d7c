/** Evaluation settings; the defaults are pycocotools' `Params(iouType='bbox')`. */
export interface AreaRange {
  label: string;
  /** Inclusive `[lo, hi]` in pixels squared: pycocotools tests `area < lo || area > hi` for "outside". */
  range: readonly [number, number];
}

export interface EvalParams {
  /** IoU thresholds `[T]`, default 0.50:0.05:0.95. */
  iouThrs: Float64Array;
  /** Recall points `[R]`, default 0:0.01:1. */
  recThrs: Float64Array;
  /** Max detections per image `[M]`, ascending; default 1, 10, 100. */
  maxDets: number[];
  /** Area ranges `[A]`; default all, small, medium, large. */
  areaRng: AreaRange[];
  /** false: class-agnostic (pycocotools `useCats = 0`): every category pooled into one. */
  useCats: boolean;
}

/** numpy's `linspace(start, stop, num)`: `i * step + start`, last value exactly `stop`. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const out = new Float64Array(num);
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = i * step + start;
  if (num > 1) out[num - 1] = stop;
  return out;
}

export const DEFAULT_AREA_RANGES: readonly AreaRange[] = [
  { label: 'all', range: [0, 1e10] },
  { label: 'small', range: [0, 32 ** 2] },
  { label: 'medium', range: [32 ** 2, 96 ** 2] },
  { label: 'large', range: [96 ** 2, 1e10] },
];

export function defaultParams(): EvalParams {
  return {
    // Same arithmetic as pycocotools: np.linspace(.5, 0.95, round((0.95 - .5) / .05) + 1)
    iouThrs: linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0, 1, Math.round((1 - 0) / 0.01) + 1),
    maxDets: [1, 10, 100],
    areaRng: DEFAULT_AREA_RANGES.map((a) => ({ label: a.label, range: [a.range[0], a.range[1]] as const })),
    useCats: true,
  };
}

/** Index of IoU threshold `iou` in `iouThrs`, tolerant to linspace rounding (0.9 is 0.8999999999999999). */
export function iouIndex(iouThrs: ArrayLike<number>, iou: number): number {
  for (let t = 0; t < iouThrs.length; t++) if (Math.abs(iouThrs[t]! - iou) < 1e-9) return t;
  return -1;
}
