import { describe, expect, it } from 'vitest';
import { alignedGiou, alignedIou, boxIou, generalizedBoxIou } from '../src/index.js';
import { expectClose, loadFixture } from './helpers.js';

const fx = loadFixture('torchvision_core.json').iou;

describe('IoU matrices match torchvision', () => {
  it('box_iou', () => {
    const m = boxIou(Float32Array.from(fx.a), Float32Array.from(fx.b));
    expect([m.rows, m.cols]).toEqual([fx.a.length / 4, fx.b.length / 4]);
    expectClose(m.data, fx.iou);
  });

  it('generalized_box_iou', () => {
    expectClose(generalizedBoxIou(fx.a, fx.b).data, fx.giou);
  });

  it('aligned versions equal the diagonal of the matrices', () => {
    const n = 9;
    const a = fx.a.slice(0, 4 * n);
    const b = fx.b.slice(0, 4 * n);
    const iou = boxIou(a, b);
    const giou = generalizedBoxIou(a, b);
    const diag = (d: Float32Array) => Array.from({ length: n }, (_, i) => d[i * n + i]!);
    expectClose(alignedIou(a, b), diag(iou.data), 1e-7);
    expectClose(alignedGiou(a, b), diag(giou.data), 1e-7);
  });
});

describe('IoU by hand', () => {
  it('two 2x2 squares overlapping in a 1x1 corner: 1 / (4 + 4 - 1)', () => {
    expect(boxIou([0, 0, 2, 2], [1, 1, 3, 3]).data[0]).toBeCloseTo(1 / 7, 7);
    // enclosing box 3x3 = 9, union 7: GIoU = 1/7 - 2/9
    expect(generalizedBoxIou([0, 0, 2, 2], [1, 1, 3, 3]).data[0]).toBeCloseTo(1 / 7 - 2 / 9, 7);
  });

  it('disjoint boxes: IoU 0, GIoU negative', () => {
    // [0,0,1,1] and [2,0,3,1]: enclosing 3x1 = 3, union 2 -> GIoU = 0 - 1/3
    expect(boxIou([0, 0, 1, 1], [2, 0, 3, 1]).data[0]).toBe(0);
    expect(generalizedBoxIou([0, 0, 1, 1], [2, 0, 3, 1]).data[0]).toBeCloseTo(-1 / 3, 7);
  });

  it('zero-area boxes give 0, never NaN', () => {
    const point = [5, 5, 5, 5];
    const line = [0, 5, 10, 5];
    expect(boxIou(point, point).data[0]).toBe(0);
    expect(boxIou(line, [0, 0, 10, 10]).data[0]).toBe(0);
    expect(generalizedBoxIou(point, point).data[0]).toBe(0);
    expect(Number.isNaN(alignedGiou(line, line)[0])).toBe(false);
  });

  it('empty inputs give empty matrices', () => {
    const m = boxIou(new Float32Array(0), [0, 0, 1, 1]);
    expect([m.rows, m.cols, m.data.length]).toEqual([0, 1, 0]);
    expect(generalizedBoxIou([0, 0, 1, 1], []).data.length).toBe(0);
  });

  it('rejects ragged arrays and mismatched aligned counts', () => {
    expect(() => boxIou([0, 0, 1], [0, 0, 1, 1])).toThrow(/multiple of 4/);
    expect(() => alignedIou([0, 0, 1, 1], [])).toThrow(/equal box counts/);
  });
});
