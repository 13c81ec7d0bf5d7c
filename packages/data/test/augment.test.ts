import { describe, expect, it } from 'vitest';
import {
  augment,
  augmentResized,
  colorJitter,
  crop,
  defaultTrainAugment,
  hedJitter,
  hedTransform,
  hflip,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ImageHWC,
  letterbox,
  normalizeImageNet,
  pad,
  RGB_FROM_HED,
  Rng,
  resize,
  resizeImage,
  type Sample,
  vflip,
} from '../src/index.js';

/**
 * Boxes must follow pixels: each box is painted as a solid rectangle into its own colour
 * channel, the image and boxes are transformed together, and the painted region found in the
 * output must coincide with the transformed box.
 */
function paintedSample(width: number, height: number, boxes: number[][]): Sample {
  const data = new Float32Array(width * height * 3);
  boxes.forEach(([x1, y1, x2, y2], c) => {
    for (let y = y1!; y < y2!; y++) for (let x = x1!; x < x2!; x++) data[(y * width + x) * 3 + c] = 1;
  });
  return {
    image: { data, width, height },
    boxes: Float32Array.from(boxes.flat()),
    labels: Int32Array.from(boxes.map((_, i) => i)),
  };
}

/** Bounding box of pixels above 0.5 in channel `c`, or undefined when none. */
function paintedBox(img: ImageHWC, c: number, threshold = 0.5): number[] | undefined {
  let x1 = Number.POSITIVE_INFINITY;
  let y1 = Number.POSITIVE_INFINITY;
  let x2 = -1;
  let y2 = -1;
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      if (img.data[(y * img.width + x) * 3 + c]! > threshold) {
        x1 = Math.min(x1, x);
        y1 = Math.min(y1, y);
        x2 = Math.max(x2, x + 1);
        y2 = Math.max(y2, y + 1);
      }
    }
  }
  return x2 < 0 ? undefined : [x1, y1, x2, y2];
}

function iou(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const iw = Math.max(0, Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!));
  const ih = Math.max(0, Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!));
  const inter = iw * ih;
  const area = (r: ArrayLike<number>) => (r[2]! - r[0]!) * (r[3]! - r[1]!);
  return inter / (area(a) + area(b) - inter);
}

const BOXES = [
  [10, 5, 40, 30],
  [50, 20, 90, 60],
  [3, 40, 25, 70],
];

describe('geometric transforms keep boxes on their pixels', () => {
  const s = paintedSample(97, 73, BOXES);

  it('hflip and vflip: exact', () => {
    for (const f of [hflip, vflip]) {
      const out = f(s);
      for (let c = 0; c < 3; c++)
        expect(paintedBox(out.image, c)).toEqual(Array.from(out.boxes.subarray(4 * c, 4 * c + 4)));
    }
    // Hand check: x -> 97 - x, so [10, 40] becomes [57, 87].
    expect(Array.from(hflip(s).boxes.subarray(0, 4))).toEqual([57, 5, 87, 30]);
  });

  it('resize (down and up, anisotropic): IoU > 0.9 with the painted region', () => {
    for (const [w, h] of [
      [48, 40],
      [160, 90],
    ] as const) {
      const out = resize(s, w, h);
      for (let c = 0; c < 3; c++)
        expect(iou(paintedBox(out.image, c)!, out.boxes.subarray(4 * c, 4 * c + 4))).toBeGreaterThan(0.9);
    }
  });

  it('crop applies the visible-area rule (hand case)', () => {
    // Box 0 is [10, 5, 40, 30] (30 x 25). Cropping from x = 22 leaves [22, 40] x [5, 30]: 18/30 = 60 % visible.
    const kept = crop(s, 22, 0, 60, 73, 0.5);
    expect(Array.from(kept.labels)).toContain(0);
    expect(Array.from(kept.boxes.subarray(0, 4))).toEqual([0, 5, 18, 30]);
    expect(paintedBox(kept.image, 0)).toEqual([0, 5, 18, 30]);
    const dropped = crop(s, 22, 0, 60, 73, 0.7);
    expect(Array.from(dropped.labels)).not.toContain(0);
  });

  it('letterbox: longer side to size, pad to a multiple of 32 with the ImageNet mean', () => {
    const { sample, info } = letterbox(s, { size: 64 });
    expect([sample.image.width, sample.image.height]).toEqual([64, 64]);
    expect(info.scale).toBeCloseTo(64 / 97, 6);
    expect([info.contentWidth, info.contentHeight]).toEqual([64, Math.round(73 * (64 / 97))]);
    const last = (64 * 64 - 1) * 3;
    expect(Array.from(sample.image.data.subarray(last, last + 3))).toEqual(
      Array.from(Float32Array.from(IMAGENET_MEAN)),
    );
    for (let c = 0; c < 3; c++) {
      expect(iou(paintedBox(sample.image, c)!, sample.boxes.subarray(4 * c, 4 * c + 4))).toBeGreaterThan(
        0.85,
      );
    }
    const { sample: padded } = letterbox(s, { multiple: 32 });
    expect([padded.image.width, padded.image.height]).toEqual([128, 96]);
  });

  it('the full random pipeline, 40 seeds: every kept box matches its pixels, every dropped box was mostly cut', () => {
    const cfg = { ...defaultTrainAugment(64), colorJitter: undefined, hed: undefined, normalize: false };
    for (let seed = 0; seed < 40; seed++) {
      const out = augment(new Rng(seed), s, cfg);
      expect([out.image.width, out.image.height]).toEqual([64, 64]);
      const kept = new Set(out.labels);
      for (let k = 0; k < out.labels.length; k++) {
        const c = out.labels[k]!;
        expect(
          iou(paintedBox(out.image, c)!, out.boxes.subarray(4 * k, 4 * k + 4)),
          `seed ${seed} box ${c}`,
        ).toBeGreaterThan(0.8);
      }
      for (let c = 0; c < 3; c++) {
        if (kept.has(c)) continue;
        // Painted pixels left of a dropped box are less than half of its scaled area (+ edge blur).
        const p = paintedBox(out.image, c, 0.5);
        if (!p) continue;
        let n = 0;
        for (let i = c; i < out.image.data.length; i += 3) if (out.image.data[i]! > 0.5) n++;
        const area = (BOXES[c]![2]! - BOXES[c]![0]!) * (BOXES[c]![3]! - BOXES[c]![1]!);
        const scale2 = (64 / 97) ** 2 * 1.25 ** 2;
        expect(n, `seed ${seed} dropped box ${c}`).toBeLessThan(
          0.5 * area * scale2 + 2 * Math.sqrt(area * scale2) * 2,
        );
      }
    }
  });

  it('the fused pass equals the step-by-step composition of the public transforms', () => {
    // Reference: crop -> flips -> colorJitter -> hedJitter -> pad -> normalise, drawing from the
    // rng in the order augment() documents.
    const cfg = defaultTrainAugment(64);
    const big = resize(paintedSample(97, 73, BOXES), 120, 90);
    const noisy = {
      ...big,
      image: { ...big.image, data: big.image.data.map((v, i) => 0.2 + 0.6 * v + 0.1 * Math.sin(i)) },
    };
    for (let seed = 0; seed < 6; seed++) {
      const rng = new Rng(seed);
      let ref = crop(noisy, rng.int(0, 120 - 64), rng.int(0, 90 - 64), 64, 64, 0.5);
      if (rng.bool(0.5)) ref = hflip(ref);
      if (rng.bool(0.5)) ref = vflip(ref);
      ref = { ...ref, image: colorJitter(rng, ref.image, cfg.colorJitter!) };
      ref = { ...ref, image: hedJitter(rng, ref.image, cfg.hed!) };
      ref = { ...ref, image: normalizeImageNet(pad(ref, 64, 64).image) };
      const fused = augmentResized(new Rng(seed), noisy, cfg);
      expect(fused.boxes).toEqual(ref.boxes);
      expect(fused.labels).toEqual(ref.labels);
      let max = 0;
      for (let i = 0; i < ref.image.data.length; i++)
        max = Math.max(max, Math.abs(fused.image.data[i]! - ref.image.data[i]!));
      expect(max, `seed ${seed}`).toBeLessThan(1e-4);
    }
  });

  it('is reproducible: same seed, same output; another seed, another output', () => {
    const cfg = defaultTrainAugment(64);
    const a = augment(new Rng(7), s, cfg);
    const b = augment(new Rng(7), s, cfg);
    const c = augment(new Rng(8), s, cfg);
    expect(b.image.data.every((v, i) => v === a.image.data[i])).toBe(true);
    expect(b.boxes).toEqual(a.boxes);
    expect(c.image.data.every((v, i) => v === a.image.data[i])).toBe(false);
  });
});

function randomImage(seed: number, w = 16, h = 12): ImageHWC {
  const rng = new Rng(seed);
  return { data: Float32Array.from({ length: w * h * 3 }, () => rng.uniform(0.02, 1)), width: w, height: h };
}

describe('colour', () => {
  it('HED jitter with strength 0 is the identity', () => {
    const img = randomImage(1);
    const out = hedJitter(new Rng(3), img, { sigma: 0, bias: 0 });
    let max = 0;
    for (let i = 0; i < img.data.length; i++) max = Math.max(max, Math.abs(out.data[i]! - img.data[i]!));
    expect(max).toBeLessThan(1e-5);
  });

  it('HED: doubling haematoxylin doubles the optical density of a pure-haematoxylin pixel', () => {
    // OD of c units of haematoxylin is c * [0.65, 0.70, 0.29] (the stain vector), so rgb = exp(-OD).
    const c = 0.8;
    const h = RGB_FROM_HED[0];
    const img = { data: Float32Array.from(h.map((v) => Math.exp(-c * v))), width: 1, height: 1 };
    const out = hedTransform(img, [2, 1, 1], [0, 0, 0]);
    for (let k = 0; k < 3; k++) expect(out.data[k]!).toBeCloseTo(Math.exp(-2 * c * h[k]!), 5);
    // A shift of +0.1 eosin adds 0.1 * [0.07, 0.99, 0.11] OD.
    const shifted = hedTransform(img, [1, 1, 1], [0, 0.1, 0]);
    for (let k = 0; k < 3; k++) {
      expect(shifted.data[k]!).toBeCloseTo(Math.exp(-(c * h[k]! + 0.1 * RGB_FROM_HED[1][k]!)), 5);
    }
  });

  it('colour jitter with strength 0 is the identity', () => {
    const img = randomImage(2);
    const out = colorJitter(new Rng(1), img, { brightness: 0, contrast: 0, saturation: 0, hue: 0 });
    for (let i = 0; i < img.data.length; i++) expect(out.data[i]!).toBeCloseTo(img.data[i]!, 5);
  });

  it('ImageNet normalisation (hand values)', () => {
    const img = { data: Float32Array.from([...IMAGENET_MEAN, 1, 1, 1]), width: 2, height: 1 };
    const out = normalizeImageNet(img);
    for (let k = 0; k < 3; k++) expect(out.data[k]!).toBeCloseTo(0, 6);
    for (let k = 0; k < 3; k++)
      expect(out.data[3 + k]!).toBeCloseTo((1 - IMAGENET_MEAN[k]!) / IMAGENET_STD[k]!, 5);
  });
});

describe('resize parity with PyTorch', () => {
  it('matches F.interpolate(bilinear, align_corners=False) from tooling/fixtures/data_resize.py', async () => {
    const { readFile } = await import('node:fs/promises');
    const fx = JSON.parse(await readFile(new URL('./fixtures/resize.json', import.meta.url), 'utf8')) as {
      cases: {
        width: number;
        height: number;
        outWidth: number;
        outHeight: number;
        input: number[];
        output: number[];
      }[];
    };
    for (const c of fx.cases) {
      const out = resizeImage(
        { data: Float32Array.from(c.input), width: c.width, height: c.height },
        c.outWidth,
        c.outHeight,
      );
      let max = 0;
      for (let i = 0; i < c.output.length; i++) max = Math.max(max, Math.abs(out.data[i]! - c.output[i]!));
      expect(max, `${c.width}x${c.height} -> ${c.outWidth}x${c.outHeight}`).toBeLessThan(1e-6);
    }
  });
});
