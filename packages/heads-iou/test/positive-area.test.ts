import { describe, expect, it } from 'vitest';
import { postprocessDetections } from '../src/index.js';
import { fixtureImageOutputs } from './helpers.js';

describe('post-processing keeps only boxes with positive area after clipping (issue 22)', () => {
  it('a 1x1 image: anchors wholly outside it give no detections, the one covering it a 1x1 box', () => {
    // Hand-built: anchor 0 covers the pixel, anchors 1-3 lie right of / below / diagonal to it, so
    // clipping to [0, 1] x [0, 1] squeezes them to zero width or height. Zero deltas decode to the
    // anchors themselves; every score is above the threshold, and the boxes do not overlap (no NMS).
    const boxes = [-4, -4, 4, 4, 8, 0, 16, 8, 0, 8, 8, 16, 8, 8, 16, 16];
    const got = postprocessDetections(
      { clsLogits: [3, 4, 5, 6], boxDeltas: new Float32Array(16) },
      { boxes, levelCounts: [4] },
      1,
      { imageSize: [1, 1], scoreThreshold: 0.05 },
    );
    expect(Array.from(got.boxes)).toEqual([0, 0, 1, 1]);
    expect(got.scores.length).toBe(1);
    expect(got.scores[0]).toBeCloseTo(1 / (1 + Math.exp(-3)), 6);
  });

  it('every kept box has positive width and height on a crowded tiny image', () => {
    // 200 random anchors around a 3x2 image with random deltas: whatever survives is a real box.
    let s = 7;
    const rnd = () => {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      return s / 2 ** 31;
    };
    const n = 200;
    const anchors: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = rnd() * 12 - 6;
      const y = rnd() * 12 - 6;
      anchors.push(x, y, x + 1 + rnd() * 6, y + 1 + rnd() * 6);
    }
    const got = postprocessDetections(
      {
        clsLogits: Float32Array.from({ length: n }, () => rnd() * 4),
        boxDeltas: Float32Array.from({ length: 4 * n }, () => rnd() - 0.5),
      },
      { boxes: anchors, levelCounts: [n] },
      1,
      { imageSize: [2, 3], nmsThreshold: 0.99, maxDetections: n },
    );
    expect(got.scores.length).toBeGreaterThan(0);
    for (let k = 0; k < got.scores.length; k++) {
      expect(got.boxes[4 * k + 2]! - got.boxes[4 * k]!).toBeGreaterThan(0.01);
      expect(got.boxes[4 * k + 3]! - got.boxes[4 * k + 1]!).toBeGreaterThan(0.01);
    }
  });
});

describe('against torchvision', () => {
  it("equals torchvision's postprocess_detections minus its zero-area boxes when the cap does not bind", async () => {
    const { readFileSync } = await import('node:fs');
    const fx = JSON.parse(readFileSync(new URL('./fixtures/heads_parity.json', import.meta.url), 'utf8'));
    const pp = fx.postprocess;
    let dropped = 0;
    for (const c of pp.cases) {
      c.detections.forEach(
        (expected: { boxes: number[]; scores: number[]; labels: number[] }, img: number) => {
          const got = postprocessDetections(
            fixtureImageOutputs(fx, img),
            { boxes: pp.anchors, levelCounts: pp.levelCounts },
            fx.numClasses,
            { scoreMode: c.mode, topK: c.topk, scoreThreshold: c.scoreThreshold, imageSize: pp.imageSize },
          );
          const keep = expected.scores
            .map((_, k) => k)
            .filter((k) => {
              const b = expected.boxes.slice(4 * k, 4 * k + 4);
              return b[2]! - b[0]! > 0.01 && b[3]! - b[1]! > 0.01;
            });
          dropped += expected.scores.length - keep.length;
          // Zero-area boxes neither suppress nor are suppressed (IoU 0), so without the
          // maxDetections cap binding the result is torchvision's minus those boxes.
          if (expected.scores.length >= 100) return;
          expect([...got.labels]).toEqual(keep.map((k) => expected.labels[k]));
          expect(Array.from(got.scores)).toEqual(
            keep.map((k) => expect.closeTo(expected.scores[k]!, 5) as unknown as number),
          );
        },
      );
    }
    expect(dropped).toBeGreaterThan(0); // the fixture does exercise the case
  });
});
