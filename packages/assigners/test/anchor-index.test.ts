import { describe, expect, it } from 'vitest';
import { anchorIndex, centreRange, centreWindow, nearestK } from '../src/anchor-index.js';
import { smallestK } from '../src/topk.js';
import { pyramid, rng } from './helpers.js';

describe('anchor index (sorted by centre x per level) against full scans', () => {
  const { anchors, levelCounts } = pyramid(96, 128);
  const starts = Int32Array.of(
    0,
    ...levelCounts.map((_, l) => levelCounts.slice(0, l + 1).reduce((s, v) => s + v, 0)),
  );
  const index = anchorIndex(anchors, starts);
  const cx = (i: number) => (anchors[4 * i]! + anchors[4 * i + 2]!) / 2;
  const cy = (i: number) => (anchors[4 * i + 1]! + anchors[4 * i + 3]!) / 2;

  it('is cached per anchors array', () => {
    expect(anchorIndex(anchors, starts)).toBe(index);
    expect(anchorIndex(Float32Array.from(anchors), starts)).not.toBe(index);
  });

  it('nearestK equals the full scan, ties (nine anchors per location, symmetric points) included', () => {
    const rand = rng(9);
    // Grid points and cell centres give exact distance ties; random points give none.
    const points = [
      [64, 48],
      [66, 50],
      [2, 2],
      [127, 95],
      ...Array.from({ length: 20 }, () => [rand() * 128, rand() * 96]),
    ];
    for (const [x, y] of points) {
      for (let l = 0; l < levelCounts.length; l++) {
        for (const k of [1, 9, 20]) {
          const d = (i: number) => (cx(i) - x!) ** 2 + (cy(i) - y!) ** 2;
          const expected = smallestK(starts[l]!, starts[l + 1]!, k, d);
          expect(Array.from(nearestK(index, l, x!, y!, k))).toEqual(Array.from(expected));
        }
      }
    }
  });

  it('centreRange holds exactly the anchors with centre x strictly inside the range', () => {
    for (const [lo, hi] of [
      [10, 50],
      [12, 12],
      [-5, 200],
      [30.5, 33],
    ]) {
      for (let l = 0; l < levelCounts.length; l++) {
        const [from, to] = centreRange(index, l, lo!, hi!);
        const got = Array.from(index.order.subarray(from, to)).sort((p, q) => p - q);
        const want: number[] = [];
        for (let i = starts[l]!; i < starts[l + 1]!; i++) if (cx(i) > lo! && cx(i) < hi!) want.push(i);
        expect(got).toEqual(want);
      }
    }
  });

  it('centreWindow holds exactly the anchors with centre strictly inside the rectangle', () => {
    const rand = rng(4);
    const windows = [
      [10, 50, 20, 40],
      [30, 30.5, -1, 100],
      [-5, 200, -5, 200],
      ...Array.from({ length: 10 }, () => {
        const x = rand() * 128;
        const y = rand() * 96;
        return [x, x + rand() * 60, y, y + rand() * 60];
      }),
    ];
    for (const [x1, x2, y1, y2] of windows) {
      for (let l = 0; l < levelCounts.length; l++) {
        const ranges = centreWindow(index, l, x1!, x2!, y1!, y2!);
        const got: number[] = [];
        for (let t = 0; t < ranges.length; t += 2)
          for (let p = ranges[t]!; p < ranges[t + 1]!; p++) got.push(index.order[p]!);
        got.sort((p, q) => p - q);
        const want: number[] = [];
        for (let i = starts[l]!; i < starts[l + 1]!; i++) {
          if (cx(i) > x1! && cx(i) < x2! && cy(i) > y1! && cy(i) < y2!) want.push(i);
        }
        expect(got).toEqual(want);
      }
    }
  });
});
