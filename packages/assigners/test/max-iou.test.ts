import { readFileSync } from 'node:fs';
import { generateAnchors, panN2N5AnchorConfig } from '@bmc/core';
import { describe, expect, it } from 'vitest';
import { BACKGROUND, IGNORE, MaxIoUAssigner } from '../src/index.js';

interface MatcherCase {
  name: string;
  high: number;
  low: number;
  allowLow: boolean;
  gt: number[];
  numGts: number;
  matches: Array<[number, number]>;
}
const fx = JSON.parse(
  readFileSync(new URL('./fixtures/torchvision_matcher.json', import.meta.url), 'utf8'),
) as {
  height: number;
  width: number;
  numAnchors: number;
  anchorSum: number;
  anchorSample: number[];
  cases: MatcherCase[];
};

describe('MaxIoU against torchvision Matcher (fixtures from tooling/fixtures/assigners_matcher.py)', () => {
  const anchors = generateAnchors(panN2N5AnchorConfig(), fx.height, fx.width);

  it('uses the same anchors as torchvision', () => {
    expect(anchors.boxes.length / 4).toBe(fx.numAnchors);
    let sum = 0;
    for (const v of anchors.boxes) sum += v;
    expect(sum).toBeCloseTo(fx.anchorSum, 3);
    const sample: number[] = [];
    for (let i = 0; i < fx.numAnchors; i += 997) sample.push(...anchors.boxes.subarray(4 * i, 4 * i + 4));
    expect(sample).toEqual(fx.anchorSample);
  });

  for (const c of fx.cases) {
    it(`matches torchvision exactly: ${c.name} (${c.numGts} GTs)`, () => {
      const expected = new Int32Array(fx.numAnchors).fill(-1);
      for (const [i, v] of c.matches) expected[i] = v;
      const assigner = new MaxIoUAssigner({
        posIouThr: c.high,
        negIouThr: c.low,
        matchLowQuality: c.allowLow,
      });
      const labels = Array.from({ length: c.numGts }, (_, j) => j % 3);
      const r = assigner.assign({ anchors: anchors.boxes, gtBoxes: c.gt, gtLabels: labels });
      let mismatches = 0;
      for (let i = 0; i < fx.numAnchors; i++) if (r.gtIndex[i] !== expected[i]) mismatches++;
      expect(mismatches).toBe(0);
      expect(r.numPositives).toBe(c.matches.filter(([, v]) => v >= 0).length);
      let badLabels = 0;
      for (let i = 0; i < fx.numAnchors; i++) {
        const j = r.gtIndex[i]!;
        if (r.labels[i] !== (j >= 0 ? labels[j] : j)) badLabels++;
      }
      expect(badLabels).toBe(0);
    });
  }
});

describe('MaxIoU semantics by hand', () => {
  // Anchors: A0 = [0,0,10,10]; A1 = [5,0,15,10]; A2 = [0,0,10,4]; A3 = [20,20,30,30].
  const anchors = [0, 0, 10, 10, 5, 0, 15, 10, 0, 0, 10, 4, 20, 20, 30, 30];
  // GT [0,0,10,10]: IoU with A0 = 1; A1: inter 5x10 = 50, union 150 -> 1/3; A2: 40/100 = 0.4; A3: 0.
  const gt = [0, 0, 10, 10];

  it('thresholds: >= 0.5 positive, < 0.4 background, between ignored', () => {
    const r = new MaxIoUAssigner().assign({ anchors, gtBoxes: gt, gtLabels: [7] });
    expect(Array.from(r.gtIndex)).toEqual([0, BACKGROUND, IGNORE, BACKGROUND]);
    expect(Array.from(r.labels)).toEqual([7, BACKGROUND, IGNORE, BACKGROUND]);
    expect(r.iou[0]).toBe(1);
    expect(r.iou[2]).toBe(0);
  });

  it('negative range [0.35, 0.4): IoU 1/3 falls below it and is ignored', () => {
    const r = new MaxIoUAssigner({ negIouThr: [0.35, 0.4] }).assign({ anchors, gtBoxes: gt, gtLabels: [0] });
    expect(Array.from(r.gtIndex)).toEqual([0, IGNORE, IGNORE, IGNORE]);
  });

  it('low-quality match keeps the best anchor of a GT that nobody covers at 0.5', () => {
    // GT [5,0,12,10]: A0 inter 5x10 = 50, union 100 + 70 - 50 = 120 -> 0.4167; A1 inter 7x10 = 70, union 100 -> 0.7.
    // GT [0,0,10,1]: A2 inter 10x1 = 10, union 40 -> 0.25 (its best); A0: 10/100 = 0.1.
    const r = new MaxIoUAssigner().assign({
      anchors,
      gtBoxes: [5, 0, 12, 10, 0, 0, 10, 1],
      gtLabels: [0, 1],
    });
    expect(r.gtIndex[1]).toBe(0);
    expect(r.gtIndex[2]).toBe(1);
    expect(r.iou[2]).toBeCloseTo(0.25, 6);
    // With min_pos_iou 0.3 the 0.25 match is not made (A2's best IoU 0.25 < 0.4: background).
    const strict = new MaxIoUAssigner({ minPosIou: 0.3 }).assign({
      anchors,
      gtBoxes: [5, 0, 12, 10, 0, 0, 10, 1],
      gtLabels: [0, 1],
    });
    expect(strict.gtIndex[2]).toBe(BACKGROUND);
  });

  it("low-quality target: torchvision's argmax versus mmdetection's best-for-GT", () => {
    // GT0 [5,0,12,10]: A0 inter 5x10 = 50, union 120 -> 0.4167 (A0's argmax); its own best is A1 (0.7).
    // GT1 [0,4,6,10]: A0 inter 6x6 = 36, union 100 -> 0.36 (GT1's best); A1 inter 1x6 = 6, union 130 -> 0.046.
    // So A0 is a low-quality anchor of GT1 whose argmax is GT0.
    const input = { anchors, gtBoxes: [5, 0, 12, 10, 0, 4, 6, 10], gtLabels: [0, 1] };
    expect(new MaxIoUAssigner().assign(input).gtIndex[0]).toBe(0);
    expect(new MaxIoUAssigner({ lowQualityTarget: 'gt' }).assign(input).gtIndex[0]).toBe(1);
  });

  it('no ground truth: everything background; zero-area ground truth: never matched', () => {
    const none = new MaxIoUAssigner().assign({ anchors, gtBoxes: [], gtLabels: [] });
    expect(Array.from(none.gtIndex)).toEqual([-1, -1, -1, -1]);
    expect(none.numPositives).toBe(0);
    const flat = new MaxIoUAssigner().assign({ anchors, gtBoxes: [3, 3, 3, 8], gtLabels: [0] });
    expect(flat.numPositives).toBe(0);
  });

  it('rejects malformed input with the field named', () => {
    const a = new MaxIoUAssigner();
    expect(() => a.assign({ anchors: [0, 0, 1], gtBoxes: [], gtLabels: [] })).toThrow(/anchors/);
    expect(() => a.assign({ anchors, gtBoxes: gt, gtLabels: [] })).toThrow(/gtLabels has 0 entries/);
    expect(() => a.assign({ anchors, gtBoxes: [0, 0, Number.NaN, 1], gtLabels: [0] })).toThrow(/gtBoxes/);
    expect(() => a.assign({ anchors, levelCounts: [3], gtBoxes: gt, gtLabels: [0] })).toThrow(/levelCounts/);
  });
});
