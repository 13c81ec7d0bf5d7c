import { describe, expect, it } from 'vitest';
import { apAtIous, bestF1Sweep, type CocoDetection, evaluateCoco } from '../src/index.js';
import { ann } from './helpers.js';

// One image, four 10x10 ground truths A, B, C, D, seven detections ranked by score:
//   0.9 exact A (TP)            0.8 exact B (TP)          0.7 empty space (FP)
//   0.6 C shifted 2 px in x: IoU = (10-2)*10 / (200-80) = 8/12 = 0.667 -> TP for IoU <= 0.65, FP above
//   0.5 FP    0.4 FP    0.3 exact D (TP)
const gt = {
  images: [{ id: 1 }],
  categories: [{ id: 1, name: 'cell' }],
  annotations: [
    ann(1, 1, [0, 0, 10, 10]),
    ann(2, 1, [50, 0, 10, 10]),
    ann(3, 1, [0, 100, 10, 10]),
    ann(4, 1, [50, 100, 10, 10]),
  ],
};
const dt: CocoDetection[] = [
  { image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: 0.9 },
  { image_id: 1, category_id: 1, bbox: [50, 0, 10, 10], score: 0.8 },
  { image_id: 1, category_id: 1, bbox: [200, 200, 10, 10], score: 0.7 },
  { image_id: 1, category_id: 1, bbox: [2, 100, 10, 10], score: 0.6 },
  { image_id: 1, category_id: 1, bbox: [300, 200, 10, 10], score: 0.5 },
  { image_id: 1, category_id: 1, bbox: [400, 200, 10, 10], score: 0.4 },
  { image_id: 1, category_id: 1, bbox: [50, 100, 10, 10], score: 0.3 },
];

describe('bestF1Sweep (Table 1.2) on a hand-built case', () => {
  const r = evaluateCoco(gt, dt);
  const rows = bestF1Sweep(r);

  it('has one row per IoU threshold', () => {
    expect(rows.map((x) => x.iouThr.toFixed(2))).toEqual([
      '0.50',
      '0.55',
      '0.60',
      '0.65',
      '0.70',
      '0.75',
      '0.80',
      '0.85',
      '0.90',
      '0.95',
    ]);
  });

  it('IoU 0.50-0.65: TP TP FP TP FP FP TP -> best F1 after 4 detections', () => {
    // cut after k: (P, R, F1) = 1:(1, .25, .4) 2:(1, .5, .667) 3:(.667, .5, .571) 4:(.75, .75, .75)
    //              5:(.6, .75, .667) 6:(.5, .75, .6) 7:(4/7, 1, 8/11 = .727)
    for (const row of rows.slice(0, 4)) {
      expect(row.precision).toBe(0.75);
      expect(row.recall).toBe(0.75);
      expect(row.f1).toBeCloseTo(0.75, 15);
      expect(row.scoreThreshold).toBe(0.6);
      expect([row.tp, row.fp, row.fn]).toEqual([3, 1, 1]);
    }
  });

  it('IoU 0.70-0.95: TP TP FP FP FP FP TP -> best F1 after 2 detections', () => {
    // 1:(1, .25, .4) 2:(1, .5, 2/3) 3:(2/3, .5, 4/7) 4:(.5, .5, .5) ... 7:(3/7, .75, 6/11 = .545)
    for (const row of rows.slice(4)) {
      expect(row.precision).toBe(1);
      expect(row.recall).toBe(0.5);
      expect(row.f1).toBeCloseTo(2 / 3, 15);
      expect(row.scoreThreshold).toBe(0.8);
      expect([row.tp, row.fp, row.fn]).toEqual([2, 0, 2]);
    }
  });

  it('AP per IoU follows the 101-point interpolation', () => {
    const eps = 2.220446049250313e-16;
    const p = (tp: number, fp: number) => tp / (tp + fp + eps);
    // IoU 0.5: interpolated precision 1 up to recall 0.5 (51 points), 0.75 on (0.5, 0.75] (25),
    // max(4/7) on (0.75, 1] (25)
    const ap50 = (51 * p(2, 0) + 25 * p(3, 1) + 25 * p(4, 3)) / 101;
    // IoU 0.9: 1 up to recall 0.5 (51 points), 3/7 on (0.5, 0.75] (25), 0 beyond (25)
    const ap90 = (51 * p(2, 0) + 25 * p(3, 4)) / 101;
    expect(rows[0]!.ap).toBeCloseTo(ap50, 14);
    expect(rows[8]!.ap).toBeCloseTo(ap90, 14);
    const t13 = apAtIous(r);
    expect(t13.AP50).toBeCloseTo(ap50, 14);
    expect(t13.AP90).toBeCloseTo(ap90, 14);
    expect(Object.keys(t13)).toEqual(['AP50', 'AP75', 'AP90']);
  });

  it('precision / scores arrays hold the interpolated value and the score where each recall point is reached', () => {
    const [, R, K, A, M] = r.counts;
    const at = (arr: Float64Array, t: number, q: number) =>
      arr[(((t * R + q) * K + 0) * A + 0) * M + (M - 1)]!;
    const eps = 2.220446049250313e-16;
    // IoU 0.5, rc = .25 .5 .5 .75 .75 .75 1: recall 0.30 is first reached at detection 2 (score
    // 0.8), 0.60 at detection 4 (0.6), 0.80 at detection 7 (0.3); recall 0 at detection 1.
    expect([0, 30, 60, 80].map((q) => at(r.scores, 0, q))).toEqual([0.9, 0.8, 0.6, 0.3]);
    expect(at(r.precision, 0, 30)).toBe(2 / (2 + eps));
    expect(at(r.precision, 0, 60)).toBe(3 / (4 + eps));
    expect(at(r.precision, 0, 80)).toBe(4 / (7 + eps));
    // IoU 0.9 never reaches recall 0.8 (3 of 4): precision and score 0 there, as pycocotools leaves them.
    expect(at(r.precision, 8, 80)).toBe(0);
    expect(at(r.scores, 8, 80)).toBe(0);
  });

  it('tied scores are kept or dropped together', () => {
    // Give the FP at 0.7 the same score as the TP at 0.8: the cut after two detections disappears.
    const tied = dt.map((d, i) => (i === 2 ? { ...d, score: 0.8 } : d));
    const row = bestF1Sweep(evaluateCoco(gt, tied))[5]!;
    // IoU 0.75: T {T F} F F F T (braces: tied) -> cuts 1:(1, .25, .4) 3:(2/3, .5, 4/7 = .571)
    // 4:(.5, .5, .5) 5:(.4, .5, .444) 6:(1/3, .5, .4) 7:(3/7, .75, 6/11 = .545)
    expect(row.scoreThreshold).toBe(0.8);
    expect(row.f1).toBeCloseTo(4 / 7, 15);
    expect([row.tp, row.fp]).toEqual([2, 1]);
  });

  it('no detections: zeros and a null threshold', () => {
    const row = bestF1Sweep(evaluateCoco(gt, []))[0]!;
    expect(row).toMatchObject({
      precision: 0,
      recall: 0,
      f1: 0,
      scoreThreshold: null,
      tp: 0,
      fp: 0,
      fn: 4,
      ap: 0,
    });
  });
});
