import type { BmcMetadata } from '@bmc/export/metadata';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeToPixels } from '../src/image.js';
import { type Detector, loadDetector } from '../src/model.js';
import { detectPixels } from '../src/pipeline/detect.js';
import { postprocess } from '../src/pipeline/postprocess.js';
import { prepareInput } from '../src/pipeline/preprocess.js';
import { planTiles } from '../src/pipeline/tiling.js';
import { smearPng, TINY_MODEL } from './helpers.js';

describe('prepareInput', () => {
  const norm = { scale: 0.5, mean: [1, 2, 3] as const, std: [2, 4, 8] as const };

  it('normalises (p * scale - mean) / std into NCHW and pads with zeros to the size multiple', () => {
    // 2 x 1 image: pixel (0,0) = (10, 20, 30), pixel (1,0) = (40, 50, 60).
    const rgb = {
      data: Uint8Array.from([10, 20, 30, 40, 50, 60]),
      width: 2,
      height: 1,
      channels: 3 as const,
    };
    const p = prepareInput(rgb, norm, 4);
    expect([p.width, p.height, p.contentWidth, p.contentHeight]).toEqual([4, 4, 2, 1]);
    const plane = 16;
    // R: (10*0.5-1)/2 = 2, (40*0.5-1)/2 = 9.5; G: (20*0.5-2)/4 = 2, (50*0.5-2)/4 = 5.75;
    // B: (30*0.5-3)/8 = 1.5, (60*0.5-3)/8 = 3.375.
    expect(Array.from(p.tensor.subarray(0, 2))).toEqual([2, 9.5]);
    expect(Array.from(p.tensor.subarray(plane, plane + 2))).toEqual([2, 5.75]);
    expect(Array.from(p.tensor.subarray(2 * plane, 2 * plane + 2))).toEqual([1.5, 3.375]);
    // Everything else is padding: the normalised mean, 0.
    const nonPad = new Set([0, 1, plane, plane + 1, 2 * plane, 2 * plane + 1]);
    p.tensor.forEach((v, i) => {
      if (!nonPad.has(i)) expect(v).toBe(0);
    });
    // RGBA input (the browser's canvas) gives the same tensor: alpha is ignored.
    const rgba = {
      data: Uint8Array.from([10, 20, 30, 255, 40, 50, 60, 7]),
      width: 2,
      height: 1,
      channels: 4 as const,
    };
    expect(prepareInput(rgba, norm, 4).tensor).toEqual(p.tensor);
  });

  it('halving with half-pixel bilinear sampling averages each 2x2 block', () => {
    // v(x, y) = x + 4y on every channel; output (0,0) samples at (0.5, 0.5): mean of 0, 1, 4, 5 = 2.5.
    const data = new Uint8Array(4 * 4 * 3);
    for (let y = 0; y < 4; y++)
      for (let x = 0; x < 4; x++) data.fill(x + 4 * y, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    const id = { scale: 1, mean: [0, 0, 0] as const, std: [1, 1, 1] as const };
    const p = prepareInput({ data, width: 4, height: 4, channels: 3 }, id, 2, 0.5);
    expect([p.width, p.height]).toEqual([2, 2]);
    // Blocks: (0,1,4,5) -> 2.5, (2,3,6,7) -> 4.5, (8,9,12,13) -> 10.5, (10,11,14,15) -> 12.5.
    expect(Array.from(p.tensor.subarray(0, 4))).toEqual([2.5, 4.5, 10.5, 12.5]);
  });

  it('crops a region without copying the rest of the image', () => {
    const data = new Uint8Array(4 * 4 * 3);
    for (let i = 0; i < 16; i++) data.fill(i, i * 3, i * 3 + 3);
    const id = { scale: 1, mean: [0, 0, 0] as const, std: [1, 1, 1] as const };
    const p = prepareInput({ data, width: 4, height: 4, channels: 3 }, id, 1, 1, {
      x: 1,
      y: 2,
      width: 2,
      height: 2,
    });
    // Pixels (1,2), (2,2), (1,3), (2,3) have values 9, 10, 13, 14.
    expect(Array.from(p.tensor.subarray(0, 4))).toEqual([9, 10, 13, 14]);
  });
});

describe('planTiles', () => {
  it.each([
    [1000, 700, 384, 128, 32],
    [2049, 513, 512, 100, 1],
    [300, 200, 512, 64, 32],
  ])(
    '%ix%i in %i px tiles with %i overlap, aligned to %i: cores partition the image, tiles cover it',
    (w, h, size, overlap, align) => {
      const tiles = planTiles(w, h, size, overlap, align);
      const owner = new Int32Array(w * h);
      const covered = new Uint8Array(w * h);
      for (const t of tiles) {
        expect(t.width).toBeLessThanOrEqual(size);
        expect(t.x % align).toBe(0);
        expect(t.y % align).toBe(0);
        expect(t.x + t.width).toBeLessThanOrEqual(w);
        expect(t.y + t.height).toBeLessThanOrEqual(h);
        for (let y = t.coreY0; y < t.coreY1; y++)
          for (let x = t.coreX0; x < t.coreX1; x++) owner[y * w + x]!++;
        for (let y = t.y; y < t.y + t.height; y++)
          for (let x = t.x; x < t.x + t.width; x++) covered[y * w + x] = 1;
        // A core lies inside its tile, at least half the overlap away from an inner tile edge.
        expect(t.coreX0).toBeGreaterThanOrEqual(t.x);
        expect(t.coreX1).toBeLessThanOrEqual(t.x + t.width);
        if (t.x > 0) expect(t.coreX0 - t.x).toBeGreaterThanOrEqual(Math.floor(overlap / 2));
        if (t.x + t.width < w)
          expect(t.x + t.width - t.coreX1).toBeGreaterThanOrEqual(Math.floor(overlap / 2));
      }
      expect(owner.every((n) => n === 1)).toBe(true);
      expect(covered.every((c) => c === 1)).toBe(true);
    },
  );
});

describe('postprocess glue (metadata -> anchors -> heads-iou)', () => {
  it('decodes a hand-computed box, clips it to the content area and ranks by the model score mode', () => {
    // One level, stride 32, one 32 px square anchor: a 64x64 input has 2x2 locations.
    // core anchors sit at (x * stride, y * stride): anchor 3 = [32-16, 32-16, 32+16, 32+16] = [16, 16, 48, 48].
    const meta = {
      version: 't',
      classNames: ['cell'],
      anchors: { levels: [{ stride: 32, sizes: [32] }], aspectRatios: [1] },
      boxCoder: { weights: [1, 1, 1, 1], clip: Math.log(1000 / 16) },
      input: {
        name: 'images',
        layout: 'NCHW',
        channelOrder: 'RGB',
        sizeMultiple: 32,
        normalization: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1] },
      },
      outputs: { clsLogits: 'cls_logits', boxDeltas: 'box_deltas' },
      scoreMode: 'cls',
      nms: { scoreThreshold: 0.5, topK: 10, nmsThreshold: 0.5, maxDetections: 10, classAgnostic: false },
    } as unknown as BmcMetadata;
    const clsLogits = Float32Array.from([-5, -5, -5, 2]);
    // Anchor 3: dx = 0.5 moves the centre by half its width (16 px) to x = 48; dw = ln 2 doubles
    // the width to 64: x1 = 48 - 32 = 16, x2 = 48 + 32 = 80, clipped to the 60 px content -> 60.
    const boxDeltas = new Float32Array(16);
    boxDeltas.set([0.5, 0, Math.log(2), 0], 12);
    const d = postprocess({ clsLogits, boxDeltas }, meta, 64, 64, { width: 60, height: 64 });
    expect(d.scores.length).toBe(1);
    expect(d.scores[0]).toBeCloseTo(1 / (1 + Math.exp(-2)), 6);
    expect(Array.from(d.boxes)).toEqual([16, 16, 60, 48]);
    expect(d.classes[0]).toBe(0);
  });
});

describe('detectPixels on the tiny ONNX detector', () => {
  let detector: Detector;
  beforeAll(async () => {
    detector = await loadDetector(TINY_MODEL, { threads: 1 });
  });

  it('tiling a large field finds the same cells as one pass (stride-aligned tiles, cores, NMS merge)', async () => {
    const { png } = await smearPng(11, 1000, 700);
    const image = await decodeToPixels(png);
    const whole = await detectPixels(detector.run, detector.meta, image, {
      tileSize: 0,
      maxDetections: 1000,
    });
    const tiled = await detectPixels(detector.run, detector.meta, image, {
      tileSize: 384,
      tileOverlap: 128,
      maxDetections: 1000,
    });
    expect(whole.tiles).toBe(1);
    expect(tiled.tiles).toBeGreaterThan(4);
    expect(whole.detections.length).toBeGreaterThan(30);
    // The network's receptive field (3 strides of 32 px) is inside the overlap, so each cell of the
    // one-pass result is found again by the tile that owns its centre, with (nearly) the same box.
    const iou = (a: number[], b: number[]) => {
      const w = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!));
      const h = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
      const i = w * h;
      return i / ((a[2]! - a[0]!) * (a[3]! - a[1]!) + (b[2]! - b[0]!) * (b[3]! - b[1]!) - i);
    };
    const matched = whole.detections.filter((d) =>
      tiled.detections.some((t) => t.classId === d.classId && iou(t.box, d.box) > 0.9),
    ).length;
    expect(matched / whole.detections.length).toBeGreaterThan(0.95);
    expect(Math.abs(tiled.detections.length - whole.detections.length)).toBeLessThanOrEqual(
      0.05 * whole.detections.length,
    );
  });
});
