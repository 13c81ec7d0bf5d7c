import { describe, expect, it } from 'vitest';
import { type CocoDetection, evaluateCoco } from '../src/index.js';
import { randomCase, rng } from './helpers.js';

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const r = rng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('invariants', () => {
  it('perfect detections give AP 1 and AR 1 (pycocotools: 1 - 2e-16 from its epsilon)', () => {
    for (const seed of [1, 2, 3]) {
      const { gt } = randomCase(seed, { crowd: 0 });
      const dt: CocoDetection[] = gt.annotations.map((a, i) => ({
        image_id: a.image_id,
        category_id: a.category_id,
        bbox: a.bbox,
        score: 1 - i / 1000,
      }));
      for (const classAgnostic of [false, true]) {
        const r = evaluateCoco(gt, dt, { classAgnostic });
        expect(r.stats[0]).toBeCloseTo(1, 12);
        expect(r.stats[1]).toBeCloseTo(1, 12);
        expect(r.stats[8]).toBe(1);
      }
    }
  });

  it('shuffling detections with distinct scores changes nothing', () => {
    for (const seed of [4, 5, 6]) {
      const { gt, dt } = randomCase(seed);
      expect(new Set(dt.map((d) => d.score)).size).toBe(dt.length);
      const a = evaluateCoco(gt, dt);
      const b = evaluateCoco(gt, shuffled(dt, seed));
      expect(b.stats).toEqual(a.stats);
      expect(b.precision).toEqual(a.precision);
      expect(b.recall).toEqual(a.recall);
      const images = shuffled(gt.images, seed + 1);
      const annotations = [...gt.annotations].reverse();
      // Ground-truth order matters only for exact IoU ties between two ground truths; none here.
      const c = evaluateCoco({ ...gt, images, annotations }, dt);
      expect(c.stats).toEqual(a.stats);
    }
  });

  it('adding a detection on an image without ground truth never raises precision', () => {
    for (const seed of [7, 8, 9, 10]) {
      const { gt, dt } = randomCase(seed, { images: 16 });
      const empty = { id: 99_999 };
      const gt2 = { ...gt, images: [...gt.images, empty] };
      const base = evaluateCoco(gt2, dt);
      const r = rng(seed);
      for (let trial = 0; trial < 4; trial++) {
        const extra: CocoDetection = {
          image_id: empty.id,
          category_id: gt.categories[Math.floor(r() * gt.categories.length)]!.id,
          bbox: [r() * 400, r() * 300, 10 + r() * 150, 10 + r() * 150],
          score: r(),
        };
        const more = evaluateCoco(gt2, [...dt, extra]);
        let raised = 0;
        for (let i = 0; i < base.precision.length; i++) {
          if (base.precision[i]! > -1 && more.precision[i]! > base.precision[i]!) raised++;
        }
        expect(raised).toBe(0);
        for (let s = 0; s < 6; s++) expect(more.stats[s]!).toBeLessThanOrEqual(base.stats[s]!);
        expect(more.recall).toEqual(base.recall);
      }
    }
  });

  it('class-agnostic mode pools categories: relabelled detections score like correct ones', () => {
    const { gt, dt } = randomCase(11, { crowd: 0 });
    const wrong = dt.map((d) => ({ ...d, category_id: gt.categories[0]!.id }));
    const a = evaluateCoco(gt, dt, { classAgnostic: true });
    const b = evaluateCoco(gt, wrong, { classAgnostic: true });
    expect(a.counts[2]).toBe(1);
    // Category labels of detections no longer matter, except through the per-image order of
    // the pooled lists, which only affects exact score ties (none here).
    expect(b.stats).toEqual(a.stats);
  });

  it('restricting imgIds equals evaluating the subset', () => {
    const { gt, dt } = randomCase(12);
    const keep = new Set(gt.images.slice(0, 5).map((im) => im.id));
    const sub = {
      ...gt,
      images: gt.images.filter((im) => keep.has(im.id)),
      annotations: gt.annotations.filter((a) => keep.has(a.image_id)),
    };
    const a = evaluateCoco(gt, dt, { imgIds: [...keep] });
    const b = evaluateCoco(
      sub,
      dt.filter((d) => keep.has(d.image_id)),
    );
    expect(a.stats).toEqual(b.stats);
  });
});

describe('class-agnostic tie order', () => {
  it('ties keep pycocotools order: category, then file order', () => {
    // One GT (category 1). Two detections with the same score: A (category 2, first in the
    // file) sits on the GT, B (category 1, second) is elsewhere. Pooled, pycocotools lists
    // category 1 first, so the ranking is B (FP), A (TP): precision 0 then 1/2, interpolated
    // 1/2 everywhere -> AP 0.5 (file order would give TP, FP and AP 1). With maxDets 1 only B
    // is kept, so AR1 = 0.
    const gt = {
      images: [{ id: 1 }],
      categories: [{ id: 1 }, { id: 2 }],
      annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], area: 100 }],
    };
    const dt = [
      { image_id: 1, category_id: 2, bbox: [0, 0, 10, 10], score: 0.9 },
      { image_id: 1, category_id: 1, bbox: [50, 50, 10, 10], score: 0.9 },
    ];
    const r = evaluateCoco(gt, dt, { classAgnostic: true });
    const eps = 2.220446049250313e-16;
    expect(r.stats[1]).toBeCloseTo(1 / (2 + eps), 15);
    expect(r.stats[6]).toBe(0);
    expect(r.stats[8]).toBe(1);
  });
});
