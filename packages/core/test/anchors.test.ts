import { describe, expect, it } from 'vitest';
import { generateAnchors, octaveSizes, panN2N5AnchorConfig, retinanetAnchorConfig } from '../src/index.js';
import { expectClose, loadFixture } from './helpers.js';

const fx = loadFixture('torchvision_core.json');

describe('anchor generator matches torchvision AnchorGenerator', () => {
  it('RetinaNet sizes are truncated like torchvision', () => {
    expect(retinanetAnchorConfig().levels.map((l) => l.sizes)).toEqual(fx.anchors_retinanet.sizes);
  });

  for (const c of fx.anchors_retinanet.cases) {
    it(`RetinaNet P3-P7 at ${c.height}x${c.width}`, () => {
      const a = generateAnchors(retinanetAnchorConfig(), c.height, c.width);
      expect(a.boxes.length / 4).toBe(c.count);
      expectClose(a.boxes, c.anchors, 0);
    });
  }

  it('N2-N5 levels at 64x64', () => {
    const c = fx.anchors_n2n5;
    const a = generateAnchors(panN2N5AnchorConfig(), c.height, c.width);
    expect(a.boxes.length / 4).toBe(c.count);
    expectClose(a.boxes, c.anchors, 0);
  });
});

describe('anchor layout', () => {
  it("195,840 anchors for bmc's N2-N5 levels at 512x512", () => {
    // (128^2 + 64^2 + 32^2 + 16^2) locations x 9 anchors
    const a = generateAnchors(panN2N5AnchorConfig(), 512, 512);
    expect(a.boxes.length / 4).toBe(195_840);
    expect(Array.from(a.levelCounts)).toEqual([128 * 128 * 9, 64 * 64 * 9, 32 * 32 * 9, 16 * 16 * 9]);
    expect(a.featureSizes).toEqual([
      [128, 128],
      [64, 64],
      [32, 32],
      [16, 16],
    ]);
  });

  it('order is (level, y, x, anchor): the 10th anchor is at x = stride, first ratio, first size', () => {
    const a = generateAnchors(
      { levels: [{ stride: 8, sizes: [32] }], aspectRatios: [1], roundBase: true },
      16,
      16,
    );
    // one anchor per location; locations (0,0), (0,8), (8,0), (8,8)
    expect(Array.from(a.boxes)).toEqual([-16, -16, 16, 16, -8, -16, 24, 16, -16, -8, 16, 24, -8, -8, 24, 24]);
  });

  it('octave sizes', () => {
    expect(octaveSizes(32)).toEqual([32, 40, 50]);
  });

  it('rejects empty inputs', () => {
    expect(() => generateAnchors(retinanetAnchorConfig(), 0, 10)).toThrow(/bad input size/);
  });
});
