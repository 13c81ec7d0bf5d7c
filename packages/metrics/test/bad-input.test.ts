import { InvalidInputError } from '@bmc/core';
import { describe, expect, it } from 'vitest';
import { type CocoDetection, type CocoGroundTruth, detectionsToCoco, evaluateCoco } from '../src/index.js';
import { ann } from './helpers.js';

const gt: CocoGroundTruth = {
  images: [{ id: 1 }, { id: 2 }],
  categories: [{ id: 1 }, { id: 5 }],
  annotations: [ann(1, 1, [0, 0, 10, 10]), ann(2, 2, [5, 5, 20, 20], 5)],
};
const ok: CocoDetection = { image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: 0.5 };

function fails(dt: unknown[], message: RegExp, g: unknown = gt): void {
  expect(() => evaluateCoco(g as CocoGroundTruth, dt as CocoDetection[])).toThrow(InvalidInputError);
  expect(() => evaluateCoco(g as CocoGroundTruth, dt as CocoDetection[])).toThrow(message);
}

describe('bad input names the entry', () => {
  it('unknown image id in results', () => {
    fails([ok, { ...ok, image_id: 3 }], /results\[1\]: image_id 3 is not in the ground truth images/);
  });
  it('unknown category id in results (or dropped on request, like pycocotools)', () => {
    fails(
      [ok, ok, { ...ok, category_id: 2 }],
      /results\[2\]: category_id 2 is not in the ground truth categories/,
    );
    const r = evaluateCoco(gt, [ok, { ...ok, category_id: 2 }], { unknownCategory: 'ignore' });
    const same = evaluateCoco(gt, [ok]);
    expect(r.stats).toEqual(same.stats);
  });
  it('negative box sizes', () => {
    fails([{ ...ok, bbox: [0, 0, -1, 10] }], /results\[0\]: negative bbox size \(w -1, h 10\)/);
    fails([], /ground truth annotations\[1\]: negative bbox size/, {
      ...gt,
      annotations: [gt.annotations[0], ann(2, 2, [0, 0, 3, -2])],
    });
  });
  it('NaN / missing scores and malformed boxes', () => {
    fails([ok, { ...ok, score: Number.NaN }], /results\[1\]: score NaN is not a finite number/);
    fails([{ ...ok, score: undefined }], /results\[0\]: score undefined/);
    fails([{ ...ok, bbox: [0, 0, 10] }], /results\[0\]: bbox must be \[x, y, w, h\]/);
    fails([{ ...ok, bbox: [0, Number.POSITIVE_INFINITY, 1, 1] }], /results\[0\]: bbox\[1\] Infinity/);
  });
  it('ground truth referencing unknown images or categories, duplicate ids', () => {
    fails([], /annotations\[1\]: image_id 7 is not in "images"/, {
      ...gt,
      annotations: [gt.annotations[0], ann(2, 7, [0, 0, 1, 1])],
    });
    fails([], /annotations\[0\]: category_id 9 is not in "categories"/, {
      ...gt,
      annotations: [ann(1, 1, [0, 0, 1, 1], 9)],
    });
    fails([], /annotations\[1\]: duplicate annotation id 1/, {
      ...gt,
      annotations: [gt.annotations[0], ann(1, 2, [0, 0, 1, 1])],
    });
    fails([], /images\[1\]: duplicate id 1/, { ...gt, images: [{ id: 1 }, { id: 1 }] });
  });
  it('not arrays', () => {
    expect(() => evaluateCoco(gt, {} as CocoDetection[])).toThrow(/results: must be an array/);
    fails([], /"categories" must be an array/, { images: [], annotations: [] });
  });
});

describe('detectionsToCoco', () => {
  it('converts xyxy detector output to COCO results and checks lengths', () => {
    const res = detectionsToCoco([
      {
        imageId: 1,
        boxes: Float32Array.from([0, 0, 10, 10, 5, 5, 7, 9]),
        scores: [0.9, 0.4],
        categoryIds: [1, 5],
      },
    ]);
    expect(res).toEqual([
      { image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: expect.closeTo(0.9, 7) },
      { image_id: 1, category_id: 5, bbox: [5, 5, 2, 4], score: expect.closeTo(0.4, 7) },
    ]);
    expect(evaluateCoco(gt, res).stats[1]).toBeGreaterThan(0);
    expect(() =>
      detectionsToCoco([{ imageId: 3, boxes: [0, 0, 1, 1], scores: [1, 1], categoryIds: [1, 1] }]),
    ).toThrow(/detections\[0\] \(image 3\): 1 boxes, 2 scores/);
  });
});
