import { describe, expect, it } from 'vitest';
import {
  callCells,
  classificationReport,
  confusionSvg,
  differentialCount,
  mostConfusedPairs,
  sumDifferentials,
} from '../src/index.js';

describe('classification report', () => {
  // Worked by hand: truth 0 0 0 1 1 2, pred 0 0 1 1 2 2.
  // class 0: tp 2, predicted 2, support 3 -> P 1, R 2/3, F1 0.8
  // class 1: tp 1, predicted 2, support 2 -> P 0.5, R 0.5, F1 0.5
  // class 2: tp 1, predicted 2, support 1 -> P 0.5, R 1, F1 2/3
  const r = classificationReport([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 3);
  it('per class precision / recall / F1', () => {
    expect(r.perClass[0]).toMatchObject({ precision: 1, support: 3 });
    expect(r.perClass[0]!.recall).toBeCloseTo(2 / 3);
    expect(r.perClass[0]!.f1).toBeCloseTo(0.8);
    expect(r.perClass[1]).toMatchObject({ precision: 0.5, recall: 0.5, f1: 0.5 });
    expect(r.perClass[2]!.f1).toBeCloseTo(2 / 3);
  });
  it('accuracy, balanced accuracy and macro F1', () => {
    expect(r.accuracy).toBeCloseTo(4 / 6);
    expect(r.balancedAccuracy).toBeCloseTo((2 / 3 + 0.5 + 1) / 3);
    expect(r.macroF1).toBeCloseTo((0.8 + 0.5 + 2 / 3) / 3);
    expect(r.confusion).toEqual([
      [2, 1, 0],
      [0, 1, 1],
      [0, 0, 1],
    ]);
  });
  it('most confused pairs and the SVG picture', () => {
    expect(
      mostConfusedPairs(
        [
          [5, 1, 3],
          [0, 4, 0],
          [2, 0, 1],
        ],
        2,
      ),
    ).toEqual([
      { truth: 0, pred: 2, count: 3 },
      { truth: 2, pred: 0, count: 2 },
    ]);
    const svg = confusionSvg(r.confusion, ['a<b', 'b', 'c']);
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('a&#60;b');
    expect(svg.match(/<rect x=/g)).toHaveLength(9);
  });
});

describe('differential count', () => {
  const names = ['blast', 'lymphocyte', 'platelet'];
  const probs = new Float32Array([
    0.9, 0.05, 0.05, 0.2, 0.7, 0.1, 0.4, 0.35, 0.25, 0.1, 0.1, 0.8, 0.6, 0.3, 0.1,
  ]);
  const calls = callCells(probs, 3, 0.5);
  it('calls below the threshold unclassified', () => {
    expect(calls.map((c) => c.type)).toEqual([0, 1, -1, 2, 0]);
    expect(calls[2]!.probability).toBeCloseTo(0.4);
  });
  it('adds up: counts to the cells counted, percentages to 100; excluded types are not counted', () => {
    const d = differentialCount(calls, names, 0.5, ['platelet']);
    expect(d.rows.map((r) => [r.type, r.count])).toEqual([
      ['blast', 2],
      ['lymphocyte', 1],
      ['unclassified', 1],
    ]);
    expect(d.total).toBe(4);
    expect(d.rows.reduce((a, r) => a + r.percent, 0)).toBeCloseTo(100, 10);
    expect(d.rows[0]!.percent).toBe(50);
    const run = sumDifferentials([d, d, differentialCount([], names, 0.5, ['platelet'])])!;
    expect(run.total).toBe(8);
    expect(run.rows.map((r) => r.count)).toEqual([4, 2, 2]);
    expect(differentialCount([], names, 0.5).rows.every((r) => r.percent === 0)).toBe(true);
  });
});
