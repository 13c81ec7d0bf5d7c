import { describe, expect, it } from 'vitest';
import { BACKGROUND, fitGmm1d, IGNORE, PaaAssigner } from '../src/index.js';
import { fakePredictions, pyramid, randomBoxes, rng } from './helpers.js';

describe('two-component 1-D GMM', () => {
  it('recovers two well separated clusters: their means, (biased) variances and weights', () => {
    // Clusters {0.08, 0.10, 0.12} and {0.88, 0.90, 0.92}: means 0.10 / 0.90, variance (0.02^2 * 2) / 3 = 2.6667e-4.
    const gmm = fitGmm1d([0.1, 0.12, 0.08, 0.9, 0.92, 0.88]);
    expect(gmm.means[0]).toBeCloseTo(0.1, 6);
    expect(gmm.means[1]).toBeCloseTo(0.9, 6);
    expect(gmm.variances[0]).toBeCloseTo(2.6667e-4, 6);
    expect(gmm.variances[1]).toBeCloseTo(2.6667e-4, 6);
    expect(gmm.weights[0]).toBeCloseTo(0.5, 6);
    expect(gmm.converged).toBe(true);
  });

  it('EM log-likelihood never decreases (random, tied and nearly constant data)', () => {
    const rand = rng(3);
    let checked = 0;
    for (let t = 0; t < 60; t++) {
      const k = 2 + Math.floor(rand() * 35);
      const kind = t % 3;
      const x = Array.from({ length: k }, () =>
        kind === 0 ? rand() : kind === 1 ? Math.round(rand() * 4) / 4 : 0.5 + rand() * 1e-7,
      );
      const gmm = fitGmm1d(x, { tol: 0 });
      const ll = gmm.logLikelihoods;
      expect(ll.every(Number.isFinite)).toBe(true);
      for (let s = 1; s < ll.length; s++) {
        expect(ll[s]! - ll[s - 1]!).toBeGreaterThanOrEqual(-1e-9 * Math.max(1, Math.abs(ll[s]!)));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });

  it('constant values: variances sit at the floor, nothing is NaN', () => {
    const gmm = fitGmm1d(new Array(10).fill(0.5));
    expect(gmm.variances).toEqual([1e-6, 1e-6]);
    expect(gmm.means[0]).toBeCloseTo(0.5, 12);
    expect(gmm.means[1]).toBeCloseTo(0.5, 12);
    expect(Number.isFinite(gmm.logLikelihoods.at(-1))).toBe(true);
  });
});

// One GT [0,0,40,40] and six 20x20 anchors tiling it: every anchor has IoU 400/1600 = 0.25 >= 0.1,
// so the initial matching gives all six to the GT.
const anchors = [0, 0, 20, 20, 10, 0, 30, 20, 20, 0, 40, 20, 0, 20, 20, 40, 10, 20, 30, 40, 20, 20, 40, 40];
const gt = [0, 0, 40, 40];
function scene(p: number[]) {
  // Two classes, GT label 1. Predicted boxes equal the GT (IoU 1) except anchor 2: [0,0,40,20], IoU 0.5.
  const clsProbs = new Float32Array(12);
  p.forEach((v, i) => {
    clsProbs[2 * i + 1] = v;
  });
  const predBoxes = new Float32Array(24);
  for (let i = 0; i < 6; i++) predBoxes.set(i === 2 ? [0, 0, 40, 20] : gt, 4 * i);
  return { anchors, levelCounts: [6], gtBoxes: gt, gtLabels: [1], clsProbs, predBoxes };
}

describe('PAA by hand', () => {
  // Scores p * IoU: 0.8, 0.9, 0.3 * 0.5 = 0.15, 0.85, 0.1, 0.2. Sorted: A1 .9, A3 .85, A0 .8 | A5 .2, A2 .15, A4 .1.
  // The mixture settles on the clusters (means 0.85 and 0.15); the high component's densest
  // candidate is its mean, A3 (0.85): positives are A1 and A3, A0 (0.8, high component, below the
  // mode) is negative, or ignored with belowMode 'ignore'; the low cluster is negative.
  const input = scene([0.8, 0.9, 0.3, 0.85, 0.1, 0.2]);

  it('score = p * IoU, positives down to the mode of the high component', () => {
    const { result, fits } = new PaaAssigner().assignDetailed(input);
    expect(Array.from(fits[0]!.candidates)).toEqual([1, 3, 0, 5, 2, 4]);
    expect(fits[0]!.scores[4]).toBeCloseTo(0.15, 6);
    expect(fits[0]!.gmm!.means[1]).toBeCloseTo(0.85, 5);
    expect(fits[0]!.gmm!.means[0]).toBeCloseTo(0.15, 5);
    expect(Array.from(result.gtIndex)).toEqual([BACKGROUND, 0, BACKGROUND, 0, BACKGROUND, BACKGROUND]);
    expect(Array.from(result.labels)).toEqual([-1, 1, -1, 1, -1, -1]);
    expect(result.iou[1]).toBe(1);
    expect(result.iouOf).toBe('prediction');
    const grey = new PaaAssigner({ belowMode: 'ignore' }).assign(input);
    expect(Array.from(grey.gtIndex)).toEqual([IGNORE, 0, BACKGROUND, 0, BACKGROUND, BACKGROUND]);
  });

  it("space 'logScore': log scores -0.105, -0.163, -0.223 | -1.609, -1.897, -2.303 split the same way", () => {
    const r = new PaaAssigner({ space: 'logScore' }).assign(input);
    expect(Array.from(r.gtIndex)).toEqual([BACKGROUND, 0, BACKGROUND, 0, BACKGROUND, BACKGROUND]);
  });

  it('lambda weighs the IoU: lambda 2 makes anchor 2 score 0.3 * 0.5^2 = 0.075, now the lowest', () => {
    const { fits } = new PaaAssigner({ lambda: 2 }).assignDetailed(input);
    expect(fits[0]!.candidates.at(-1)).toBe(2);
    expect(fits[0]!.scores.at(-1)).toBeCloseTo(0.075, 6);
  });

  it('top-k per level limits the candidates: k = 2 keeps A1 and A3, EM splits them, A1 alone is positive', () => {
    const { result, fits } = new PaaAssigner({ topK: 2 }).assignDetailed(input);
    expect(Array.from(fits[0]!.candidates)).toEqual([1, 3]);
    expect(result.numPositives).toBe(1);
    expect(result.gtIndex[1]).toBe(0);
  });

  it('equal scores: no split is possible, every candidate is positive; one candidate is positive', () => {
    expect(new PaaAssigner().assign(scene([0.5, 0.5, 1, 0.5, 0.5, 0.5])).numPositives).toBe(6);
    const one = new PaaAssigner().assign({
      anchors: anchors.slice(0, 4),
      gtBoxes: gt,
      gtLabels: [0],
      clsProbs: [0.3],
      predBoxes: gt,
    });
    expect(Array.from(one.gtIndex)).toEqual([0]);
  });

  it('needs predictions, and says so', () => {
    expect(() => new PaaAssigner().assign({ anchors, gtBoxes: gt, gtLabels: [0] })).toThrow(/clsProbs/);
  });
});

describe("PAA on bmc's N2-N5 anchors", () => {
  it('positives come from the GT they were initially matched to, and are deterministic', () => {
    const { anchors: boxes, levelCounts } = pyramid(128, 128);
    const rand = rng(21);
    const g = 6;
    const gtBoxes = randomBoxes(rand, g, 128, 128);
    const gtLabels = Array.from({ length: g }, (_, j) => j % 3);
    const preds = fakePredictions(rand, boxes, gtBoxes, gtLabels, 3);
    const input = { anchors: boxes, levelCounts, gtBoxes, gtLabels, ...preds };
    const a = new PaaAssigner().assignDetailed(input);
    const b = new PaaAssigner().assign(input);
    expect(Array.from(b.gtIndex)).toEqual(Array.from(a.result.gtIndex));
    for (const [j, fit] of a.fits.entries()) {
      expect(fit.candidates.length).toBeLessThanOrEqual(9 * 4);
      expect(fit.numPositive).toBeGreaterThan(0);
      for (let r = 0; r < fit.candidates.length; r++) {
        expect(a.result.gtIndex[fit.candidates[r]!]).toBe(r < fit.numPositive ? j : BACKGROUND);
      }
    }
  });
});

describe("PAA, the thesis's selection rule (selection: 'thesis')", () => {
  // Scores p * IoU: A0 0.86, A1 0.9, A2 0.3 * 0.5 = 0.15, A3 0.7, A4 0.04, A5 0.2.
  // Two well separated clusters {0.9, 0.86, 0.7} and {0.2, 0.15, 0.04}: the mixture settles on their
  // means, (0.9 + 0.86 + 0.7) / 3 = 0.82 and (0.2 + 0.15 + 0.04) / 3 = 0.13. The thesis: at or above
  // 0.82 positive (A1, A0), between 0.13 and 0.82 ignored (A3, A5, A2), below 0.13 negative (A4).
  const input = scene([0.86, 0.9, 0.3, 0.7, 0.04, 0.2]);

  it('positives above the high mean, ignored between the means, negative below the low mean', () => {
    const { result, fits } = new PaaAssigner({ selection: 'thesis' }).assignDetailed(input);
    expect(fits[0]!.gmm!.means[1]).toBeCloseTo(0.82, 3);
    expect(fits[0]!.gmm!.means[0]).toBeCloseTo(0.13, 3);
    expect(Array.from(result.gtIndex)).toEqual([0, 0, IGNORE, IGNORE, BACKGROUND, IGNORE]);
    expect(result.numPositives).toBe(2);
  });

  it("differs from the paper's rule, which makes the in-between candidates background", () => {
    // Paper: positives down to the high component's densest candidate (0.86, nearest 0.82); A3 (0.7,
    // high component, below it) and the whole low cluster are background.
    const paper = new PaaAssigner().assign(input);
    expect(Array.from(paper.gtIndex)).toEqual([0, 0, BACKGROUND, BACKGROUND, BACKGROUND, BACKGROUND]);
  });

  it('no split possible (equal scores): every candidate is positive, as the paper rule', () => {
    expect(
      new PaaAssigner({ selection: 'thesis' }).assign(scene([0.5, 0.5, 1, 0.5, 0.5, 0.5])).numPositives,
    ).toBe(6);
  });
});
