import { describe, expect, it } from 'vitest';
import { type AugmentConfig, augment, drawResize, type ImageHWC, Rng, type Sample } from '../src/index.js';

/** A black field with each box painted solid into channel (box index mod 3). */
function field(width: number, height: number, boxes: number[][]): Sample {
  const data = new Float32Array(width * height * 3);
  boxes.forEach(([x1, y1, x2, y2], i) => {
    for (let y = y1!; y < y2!; y++) for (let x = x1!; x < x2!; x++) data[(y * width + x) * 3 + (i % 3)] = 1;
  });
  return {
    image: { data, width, height },
    boxes: Float32Array.from(boxes.flat()),
    labels: Int32Array.from(boxes.map(() => 0)),
  };
}

/** Bounding box of the pixels above 0.5 in channel `c` of the first `w` x `h` pixels. */
function painted(img: ImageHWC, c: number): number[] | undefined {
  let [x1, y1, x2, y2] = [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY, -1, -1];
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++)
      if (img.data[(y * img.width + x) * 3 + c]! > 0.5) {
        x1 = Math.min(x1, x);
        y1 = Math.min(y1, y);
        x2 = Math.max(x2, x + 1);
        y2 = Math.max(y2, y + 1);
      }
  return x2 < 0 ? undefined : [x1, y1, x2, y2];
}

const crops = (onBox: number, scale: [number, number] = [1, 1]): AugmentConfig => ({
  size: 128,
  sampling: 'crops',
  scale,
  crop: { minVisible: 0.5, onBox },
});

describe("sampling: 'crops' (native resolution)", () => {
  it('keeps source pixels: no resize besides the jitter, whatever the field size', () => {
    const rng = new Rng(1);
    expect(drawResize(rng, 2448, 2048, crops(0))).toEqual({ width: 2448, height: 2048 });
    expect(drawResize(rng, 300, 200, crops(0))).toEqual({ width: 300, height: 200 });
    // Letterbox, for contrast: the longer side goes to 128.
    expect(drawResize(rng, 2448, 2048, { size: 128 })).toEqual({ width: 128, height: 107 });
    // The jitter alone scales: factors in [0.8, 1.25] of the source.
    for (let i = 0; i < 50; i++) {
      const { width } = drawResize(rng, 1000, 800, crops(0, [0.8, 1.25]));
      expect(width).toBeGreaterThanOrEqual(800);
      expect(width).toBeLessThanOrEqual(1250);
    }
  });

  it('cuts size x size crops whose boxes keep their source size and sit on their pixels', () => {
    // A 40 x 30 cell in a 1920 x 1080 field, found in a 128 px crop at its source size.
    const s = field(1920, 1080, [[900, 500, 940, 530]]);
    let found = 0;
    for (let seed = 0; seed < 20; seed++) {
      const out = augment(new Rng(seed), s, crops(1));
      expect([out.image.width, out.image.height]).toEqual([128, 128]);
      if (out.boxes.length === 0) continue;
      found++;
      const b = Array.from(out.boxes);
      const p = painted(out.image, 0)!;
      expect(p).toEqual(b);
      // Uncut boxes are exactly 40 x 30: no rescaling.
      if (b[0]! > 0 && b[1]! > 0 && b[2]! < 128 && b[3]! < 128)
        expect([b[2]! - b[0]!, b[3]! - b[1]!]).toEqual([40, 30]);
    }
    // The crop contains the box centre every time; at least half the box is visible except at the
    // very edge, so nearly every crop keeps it.
    expect(found).toBeGreaterThanOrEqual(15);
  });

  it('onBox biases crops towards cells: 1 always shows one, 0 rarely does in a sparse field', () => {
    // Three 30 px cells in a 2000 x 1500 field: a uniform 128 px crop holds one about 2% of the time.
    const s = field(2000, 1500, [
      [100, 100, 130, 130],
      [1000, 700, 1030, 730],
      [1800, 1300, 1830, 1330],
    ]);
    const count = (onBox: number) => {
      let n = 0;
      for (let seed = 0; seed < 200; seed++) if (augment(new Rng(seed), s, crops(onBox)).boxes.length) n++;
      return n;
    };
    expect(count(1)).toBeGreaterThanOrEqual(190);
    expect(count(0)).toBeLessThan(20);
    const half = count(0.5);
    expect(half).toBeGreaterThan(70);
    expect(half).toBeLessThan(130);
  });

  it('onBox picks each cell alike and places it anywhere in the crop (centre offsets span the crop)', () => {
    const s = field(2000, 1500, [
      [400, 400, 420, 420],
      [1500, 1000, 1520, 1020],
    ]);
    const hits = [0, 0];
    const offsets: number[] = [];
    for (let seed = 0; seed < 400; seed++) {
      const out = augment(new Rng(seed), s, { ...crops(1), hflip: 0, vflip: 0 });
      for (let c = 0; c < 2; c++) if (painted(out.image, c)) hits[c]!++;
      if (out.boxes.length) offsets.push((out.boxes[0]! + out.boxes[2]!) / 2);
    }
    expect(hits[0]! + hits[1]!).toBe(400);
    expect(Math.abs(hits[0]! - hits[1]!)).toBeLessThan(80);
    // Uniform over the 128 crop positions that contain the centre: mean near 64, both ends reached.
    const mean = offsets.reduce((a, b) => a + b, 0) / offsets.length;
    expect(mean).toBeGreaterThan(56);
    expect(mean).toBeLessThan(72);
    expect(Math.min(...offsets)).toBeLessThan(16);
    expect(Math.max(...offsets)).toBeGreaterThan(112);
  });

  it('an image smaller than the crop is kept whole and padded', () => {
    const s = field(100, 60, [[10, 10, 30, 30]]);
    const out = augment(new Rng(3), s, { ...crops(1), hflip: 0, vflip: 0 });
    expect([out.image.width, out.image.height]).toEqual([128, 128]);
    expect(Array.from(out.boxes)).toEqual([10, 10, 30, 30]);
  });
});
