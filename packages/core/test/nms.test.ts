import { describe, expect, it } from 'vitest';
import { argsortDescending, batchedNms, nms, topKPerLevel } from '../src/index.js';
import { loadFixture } from './helpers.js';

const fx = loadFixture('torchvision_core.json').nms;

describe('NMS matches torchvision', () => {
  it('nms at 0.5 and 0.3', () => {
    expect(Array.from(nms(fx.boxes, fx.scores, 0.5))).toEqual(fx.keep_05);
    expect(Array.from(nms(fx.boxes, fx.scores, 0.3))).toEqual(fx.keep_03);
  });

  it('batched_nms at 0.5', () => {
    expect(Array.from(batchedNms(fx.boxes, fx.scores, fx.classes, { iouThreshold: 0.5 }))).toEqual(
      fx.batched_keep_05,
    );
  });

  it('score threshold and max detections trim the torchvision result', () => {
    const all: number[] = fx.batched_keep_05;
    const expected = all.filter((i) => fx.scores[i] >= 0.5).slice(0, 20);
    const got = batchedNms(fx.boxes, fx.scores, fx.classes, {
      iouThreshold: 0.5,
      scoreThreshold: 0.5,
      maxDetections: 20,
    });
    expect(Array.from(got)).toEqual(expected);
  });
});

describe('NMS edge cases', () => {
  it('empty input', () => {
    expect(nms([], [], 0.5).length).toBe(0);
    expect(batchedNms([], [], [], { iouThreshold: 0.5 }).length).toBe(0);
  });

  it('identical scores keep input order (documented tie rule)', () => {
    const boxes = [0, 0, 10, 10, 1, 1, 11, 11, 50, 50, 60, 60];
    expect(Array.from(argsortDescending([0.5, 0.5, 0.5]))).toEqual([0, 1, 2]);
    // box 1 overlaps box 0 with IoU 81/119 > 0.5: suppressed by the earlier index
    expect(Array.from(nms(boxes, [0.5, 0.5, 0.5], 0.5))).toEqual([0, 2]);
  });

  it('IoU exactly at the threshold is kept (suppression is strict >)', () => {
    // [0,0,2,1] vs [1,0,3,1]: inter 1, union 3 -> IoU 1/3
    expect(Array.from(nms([0, 0, 2, 1, 1, 0, 3, 1], [0.9, 0.8], 1 / 3))).toEqual([0, 1]);
    expect(Array.from(nms([0, 0, 2, 1, 1, 0, 3, 1], [0.9, 0.8], 0.33))).toEqual([0]);
  });

  it('zero-area boxes never suppress', () => {
    expect(Array.from(nms([5, 5, 5, 5, 5, 5, 5, 5], [0.9, 0.8], 0.1))).toEqual([0, 1]);
  });

  it('different classes never suppress each other', () => {
    const boxes = [0, 0, 10, 10, 0, 0, 10, 10];
    expect(Array.from(batchedNms(boxes, [0.9, 0.8], [0, 1], { iouThreshold: 0.5 }))).toEqual([0, 1]);
    expect(Array.from(batchedNms(boxes, [0.9, 0.8], [1, 1], { iouThreshold: 0.5 }))).toEqual([0]);
  });

  it('rejects NaN and Infinity with a message that names the place', () => {
    expect(() => nms([0, 0, 1, 1], [Number.NaN], 0.5)).toThrow(/nms scores: non-finite value NaN at index 0/);
    expect(() => nms([0, 0, Number.POSITIVE_INFINITY, 1], [1], 0.5)).toThrow(/row 0, column 2/);
    expect(() => nms([0, 0, 1, 1], [1, 2], 0.5)).toThrow(/2 scores for 1 boxes/);
  });
});

describe('topKPerLevel', () => {
  it('keeps the best k above the threshold in each level, levels in order', () => {
    const scores = [0.1, 0.9, 0.5, 0.7, /* level 2 */ 0.2, 0.04, 0.6];
    expect(Array.from(topKPerLevel(scores, [4, 3], 2, 0.05))).toEqual([1, 3, 6, 4]);
  });

  it('checks that level counts cover the scores', () => {
    expect(() => topKPerLevel([0.1, 0.2], [1], 1)).toThrow(/sum to 1/);
  });
});

/** The textbook O(N^2) greedy sweep, written independently of the grid implementation. */
function referenceNms(boxes: number[], scores: number[], thr: number): number[] {
  const order = scores.map((_, i) => i).sort((i, j) => scores[j]! - scores[i]! || i - j);
  const removed = new Set<number>();
  const keep: number[] = [];
  const iou = (i: number, j: number) => {
    const [a1, b1, a2, b2] = boxes.slice(4 * i, 4 * i + 4) as [number, number, number, number];
    const [c1, d1, c2, d2] = boxes.slice(4 * j, 4 * j + 4) as [number, number, number, number];
    const inter =
      Math.max(0, Math.min(a2, c2) - Math.max(a1, c1)) * Math.max(0, Math.min(b2, d2) - Math.max(b1, d1));
    const union = (a2 - a1) * (b2 - b1) + (c2 - c1) * (d2 - d1) - inter;
    return union > 0 ? inter / union : 0;
  };
  for (let a = 0; a < order.length; a++) {
    const i = order[a]!;
    if (removed.has(i)) continue;
    keep.push(i);
    for (let b = a + 1; b < order.length; b++) if (iou(i, order[b]!) > thr) removed.add(order[b]!);
  }
  return keep;
}

describe('grid NMS equals the textbook greedy sweep', () => {
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (const [n, thr] of [
    [50, 0.5],
    [400, 0.3],
    [400, 0.7],
    [1500, 0.5],
  ] as const) {
    it(`${n} boxes of mixed sizes (2 px to whole image) at IoU ${thr}`, () => {
      const boxes: number[] = [];
      for (let i = 0; i < n; i++) {
        // a few huge boxes span many grid cells; many small ones share cells
        const size = rand() < 0.05 ? 100 + rand() * 300 : 2 + rand() * 30;
        const x = rand() * 400;
        const y = rand() * 400;
        boxes.push(x, y, x + size * (0.5 + rand()), y + size * (0.5 + rand()));
      }
      const scores = boxes.filter((_, i) => i % 4 === 0).map(() => Math.round(rand() * 50) / 50); // many ties
      expect(Array.from(nms(boxes, scores, thr))).toEqual(referenceNms(boxes, scores, thr));
    });
  }
});
