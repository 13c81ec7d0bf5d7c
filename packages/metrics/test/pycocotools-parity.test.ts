import { describe, expect, it } from 'vitest';
import { type CocoDetection, type CocoGroundTruth, evaluateCoco, summarizeOne } from '../src/index.js';
import { cocoCaseNames, cocoEvalDir, loadCocoCase } from './shared-fixtures.js';

const TOL = 1e-9;

function expectClose(actual: number, expected: number, what: string): void {
  if (!(Math.abs(actual - expected) <= TOL)) {
    throw new Error(`${what}: got ${actual}, pycocotools ${expected} (diff ${Math.abs(actual - expected)})`);
  }
}

// The shared pycocotools cases live outside the repo (../shared/fixtures/coco-eval); without
// them there is nothing independent to compare against, so the suite is skipped.
describe.skipIf(!cocoEvalDir)('pycocotools COCOeval parity (../shared/fixtures/coco-eval)', () => {
  const names = cocoCaseNames();
  it('finds the cases', () => {
    expect(names.length).toBeGreaterThan(20);
  });
  for (const name of names) {
    it(name, () => {
      const c = loadCocoCase(name);
      const r = evaluateCoco(c.gt as CocoGroundTruth, c.dt as CocoDetection[]);
      expect(r.stats).toHaveLength(12);
      c.expected.stats.forEach((v, i) => {
        expectClose(r.stats[i]!, v, `${name} stats[${i}]`);
      });
      const T = r.params.iouThrs.length;
      expect(c.expected.ap_per_iou).toHaveLength(T);
      for (let t = 0; t < T; t++) {
        const ap = summarizeOne(r, r.params, { ap: true, iouThr: r.params.iouThrs[t]! });
        expectClose(ap, c.expected.ap_per_iou[t]!, `${name} ap_per_iou[${t}]`);
        const ar = summarizeOne(r, r.params, { ap: false, iouThr: r.params.iouThrs[t]! });
        expectClose(ar, c.meta.diagnostics.recall_per_iou_area_all_maxdet100[t]!, `${name} recall[${t}]`);
      }
      const [, R, K, A, M] = r.counts;
      for (const [cid, ap] of Object.entries(c.meta.diagnostics.per_category_ap_area_all_maxdet100)) {
        const k = Array.from(r.catIds).indexOf(Number(cid));
        let s = 0;
        let n = 0;
        for (let t = 0; t < T; t++) {
          for (let q = 0; q < R; q++) {
            const v = r.precision[(((t * R + q) * K + k) * A + 0) * M + (M - 1)]!;
            if (v > -1) {
              s += v;
              n++;
            }
          }
        }
        expectClose(n ? s / n : -1, ap, `${name} per-category AP of ${cid}`);
      }
    });
  }
});
