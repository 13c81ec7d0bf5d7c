import { describe, expect, it } from 'vitest';
import {
  boxArea,
  checkBoxes,
  clipBoxes,
  convertBoxes,
  cxcywhToXyxy,
  gatherRows,
  keepLargeBoxes,
  xywhToXyxy,
  xyxyToCxcywh,
  xyxyToXywh,
} from '../src/index.js';

describe('box formats', () => {
  const xyxy = [10, 20, 50, 40, 0, 0, 1, 1];
  it('xyxy <-> xywh <-> cxcywh by hand', () => {
    expect(Array.from(xyxyToXywh(xyxy))).toEqual([10, 20, 40, 20, 0, 0, 1, 1]);
    expect(Array.from(xyxyToCxcywh(xyxy))).toEqual([30, 30, 40, 20, 0.5, 0.5, 1, 1]);
    expect(Array.from(xywhToXyxy([10, 20, 40, 20]))).toEqual([10, 20, 50, 40]);
    expect(Array.from(cxcywhToXyxy([30, 30, 40, 20]))).toEqual([10, 20, 50, 40]);
  });

  it('every conversion path round-trips', () => {
    for (const from of ['xyxy', 'xywh', 'cxcywh'] as const) {
      for (const to of ['xyxy', 'xywh', 'cxcywh'] as const) {
        const there = convertBoxes(convertBoxes(xyxy, 'xyxy', from), from, to);
        expect(Array.from(convertBoxes(there, to, 'xyxy'))).toEqual(xyxy);
      }
    }
  });
});

describe('box ops', () => {
  it('area treats inverted boxes as empty', () => {
    expect(Array.from(boxArea([0, 0, 2, 3, 5, 5, 4, 9]))).toEqual([6, 0]);
  });

  it('clip to the image', () => {
    expect(Array.from(clipBoxes([-5, 2, 700, 500], 640, 480))).toEqual([0, 2, 640, 480]);
  });

  it('keepLargeBoxes drops boxes thinner than minSize (BCCD has 1x1 px boxes)', () => {
    expect(Array.from(keepLargeBoxes([0, 0, 1, 1, 0, 0, 5, 5, 0, 0, 5, 1.5], 2))).toEqual([1]);
  });

  it('gatherRows', () => {
    expect(Array.from(gatherRows([0, 0, 1, 1, 2, 2, 3, 3], [1, 0]))).toEqual([2, 2, 3, 3, 0, 0, 1, 1]);
  });

  it('checkBoxes names the problem', () => {
    expect(() => checkBoxes([0, 0, Number.NaN, 1], 'gt boxes')).toThrow(
      'gt boxes: non-finite value NaN at row 0, column 2',
    );
    expect(checkBoxes([0, 0, 1, 1])).toBe(1);
  });
});
