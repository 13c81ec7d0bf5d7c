import { describe, expect, it } from 'vitest';
import {
  acquisition,
  colourHistogram,
  entropyBits,
  flipDisagreement,
  pickDiverse,
  pickRandom,
  similarity,
  thresholdEntropy,
} from '../src/commands/label/acquisition.js';
import { flipHorizontal, unflipBox } from '../src/commands/label/detect-images.js';

describe('acquisition terms (hand-computed)', () => {
  it('binary entropy: 1 bit at 0.5, 0 at the ends, H(0.25) = 0.8113 bits', () => {
    expect(entropyBits(0.5)).toBe(1);
    expect(entropyBits(0)).toBe(0);
    expect(entropyBits(1)).toBe(0);
    // -(0.25 log2 0.25 + 0.75 log2 0.75) = 0.5 + 0.311278
    expect(entropyBits(0.25)).toBeCloseTo(0.811278, 6);
  });

  it('a detection scored at the threshold is a coin flip for the count; far from it, settled', () => {
    expect(thresholdEntropy(0.35, 0.35)).toBeCloseTo(1, 9);
    // logit(s) - logit(t) = logit(0.25) when s has odds 1/3 of t's odds: t = 0.5, s = 0.25.
    expect(thresholdEntropy(0.25, 0.5)).toBeCloseTo(0.811278, 6);
    expect(thresholdEntropy(0.99, 0.35)).toBeLessThan(0.05);
    expect(thresholdEntropy(0.01, 0.35)).toBeLessThan(0.2);
  });

  it('flip disagreement: 0 for the same cells, 1 for none found again, the IoU shortfall between', () => {
    const a = [[0, 0, 10, 10] as const, [20, 20, 30, 30] as const];
    expect(flipDisagreement(a, a)).toBe(0);
    expect(flipDisagreement(a, [])).toBe(1);
    expect(flipDisagreement([], [])).toBe(0);
    // One cell found again shifted by 5 px (IoU 50/150 = 1/3), the other missed: 1 - (1/3) / 2.
    expect(flipDisagreement(a, [[5, 0, 15, 10]])).toBeCloseTo(1 - 1 / 6, 9);
  });

  it('image score = mean uncertainty of candidates + flip disagreement at the threshold', () => {
    const t = 0.5;
    const cell = [0, 0, 10, 10] as const;
    const sure = acquisition(
      { detections: [{ box: cell, score: 0.999 }], flipped: [{ box: cell, score: 0.999 }], histogram: [] },
      t,
    );
    expect(sure.score).toBeLessThan(0.02);
    expect(sure.count).toBe(1);
    // Candidates at 0.5 (1 bit) and 0.25 (0.8113 bits): mean 0.9056; the 0.5 one is counted and
    // not seen on the mirror: disagreement 1.
    const unsure = acquisition(
      {
        detections: [
          { box: cell, score: 0.5 },
          { box: [20, 20, 30, 30], score: 0.25 },
        ],
        flipped: [],
        histogram: [],
      },
      t,
    );
    expect(unsure.uncertainty).toBeCloseTo((1 + 0.811278) / 2, 6);
    expect(unsure.disagreement).toBe(1);
    expect(unsure.score).toBeCloseTo(1.905639, 5);
  });
});

describe('diverse pick', () => {
  const red = [1, 0, 0];
  const blue = [0, 0, 1];
  it('without diversity it is the top-N by score; with it, a near-copy of a picked field waits', () => {
    const items = [
      { score: 1.0, count: 40, histogram: red }, // dense dark field
      { score: 0.95, count: 40, histogram: red }, // the same slide again
      { score: 0.6, count: 10, histogram: blue }, // a different slide
    ];
    expect(pickDiverse(items, 2, 0)).toEqual([0, 1]);
    // Item 1: 0.95 * (1 - 0.5 * 1) = 0.475 < item 2: 0.6 * (1 - 0.5 * 0) = 0.6.
    expect(pickDiverse(items, 2, 0.5)).toEqual([0, 2]);
    expect(pickDiverse(items, 5, 0.5)).toEqual([0, 2, 1]);
  });

  it('similarity: histogram intersection times the count ratio', () => {
    expect(similarity({ histogram: [0.5, 0.5], count: 10 }, { histogram: [1, 0], count: 20 })).toBeCloseTo(
      0.25,
      9,
    );
    expect(similarity({ histogram: [1, 0], count: 0 }, { histogram: [1, 0], count: 0 })).toBe(1);
  });

  it('random baseline: a seeded permutation prefix, no repeats', () => {
    const p = pickRandom(10, 10, 7);
    expect([...p].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(pickRandom(10, 3, 7)).toEqual(p.slice(0, 3));
    expect(pickRandom(10, 3, 8)).not.toEqual(p.slice(0, 3));
  });
});

describe('mirror helpers', () => {
  it('flipHorizontal mirrors rows; unflipBox maps a mirrored box back', () => {
    const img = {
      data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
      width: 2,
      height: 2,
      channels: 3 as const,
    };
    expect(Array.from(flipHorizontal(img).data)).toEqual([4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
    // A box at x 10..30 in a 100-wide mirror is at x 70..90 in the image.
    expect(unflipBox([10, 5, 30, 25], 100)).toEqual([70, 5, 90, 25]);
  });

  it('colour histogram: one colour fills one bin', () => {
    const data = new Uint8Array(4 * 4 * 3).fill(255);
    const h = colourHistogram(data, 4, 4, 3);
    expect(h[511]).toBe(1);
    expect(h.reduce((s, x) => s + x, 0)).toBe(1);
  });
});
