import { describe, expect, it } from 'vitest';
import { cropCell, cropWindow, normalizeCrops, type RgbImage } from '../src/index.js';

/** R = x, G = y, B = 1: every pixel says where it came from. */
function coordImage(width: number, height: number): RgbImage {
  const data = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set([x, y, 1], (y * width + x) * 3);
  return { data, width, height };
}
const at = (img: RgbImage, x: number, y: number) =>
  Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('crop rule', () => {
  it('centres a square of side max(w, h) * (1 + 2 margin) on the box', () => {
    expect(cropWindow([10, 20, 30, 60], 0)).toEqual({ x0: 0, y0: 20, side: 40 });
    expect(cropWindow([10, 20, 30, 60], 0.25)).toEqual({ x0: -10, y0: 10, side: 60 });
  });

  it('at scale 1 copies the source pixels of the window exactly', () => {
    const img = coordImage(50, 40);
    const c = cropCell(img, [10, 12, 20, 22], { cropSize: 10, margin: 0 });
    expect(at(c, 0, 0)).toEqual([10, 12, 1]);
    expect(at(c, 9, 3)).toEqual([19, 15, 1]);
  });

  it('a box at the image border stays centred; outside pixels repeat the border', () => {
    const img = coordImage(30, 30);
    // Window x0 = y0 = -5, side 20: columns/rows 0..4 of the crop lie outside the image.
    const c = cropCell(img, [0, 0, 10, 10], { cropSize: 20, margin: 0.5 });
    for (let i = 0; i < 5; i++) expect(at(c, i, 7)).toEqual([0, 2, 1]);
    expect(at(c, 5, 5)).toEqual([0, 0, 1]);
    expect(at(c, 10, 15)).toEqual([5, 10, 1]);
    // A box hanging past the bottom-right corner: clamped to the last pixel.
    const d = cropCell(img, [25, 25, 35, 35], { cropSize: 10, margin: 0 });
    expect(at(d, 9, 9)).toEqual([29, 29, 1]);
  });

  it('downscaling averages over the footprint (a 2-pixel stripe pattern becomes its mean)', () => {
    const w = 64;
    const data = new Float32Array(w * w * 3);
    for (let y = 0; y < w; y++)
      for (let x = 0; x < w; x++) data.fill(x % 2, (y * w + x) * 3, (y * w + x) * 3 + 3);
    const c = cropCell({ data, width: w, height: w }, [0, 0, w, w], { cropSize: 8, margin: 0 });
    for (const v of c.data) expect(v).toBeCloseTo(0.5, 5);
  });

  it('refuses a bad crop size or box', () => {
    const img = coordImage(4, 4);
    expect(() => cropCell(img, [0, 0, 2, 2], { cropSize: 0, margin: 0 })).toThrow(/cropSize/);
    expect(() => cropCell(img, [0, 0, Number.NaN, 2], { cropSize: 4, margin: 0 })).toThrow(/non-finite/);
  });

  it('normalises with ImageNet mean / std', () => {
    const c = { data: new Float32Array([0.485, 0.456, 0.406, 1, 1, 1]), width: 2, height: 1 };
    const n = normalizeCrops([c]);
    for (const v of n.subarray(0, 3)) expect(v).toBeCloseTo(0, 6);
    expect(n[3]).toBeCloseTo((1 - 0.485) / 0.229, 5);
  });
});
