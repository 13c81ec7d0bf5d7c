import { colorJitter, hedJitter, type Rng } from '@bmc/data';
import type { RgbImage } from './crop.js';

export interface CropAugment {
  /** Random horizontal / vertical flips and 90-degree rotations (a cell has no up). */
  geometry: boolean;
  /** HED stain jitter (`@bmc/data`'s `hedJitter`); undefined = off. */
  hed?: { sigma: number; bias: number };
  /** Colour jitter (`@bmc/data`'s `colorJitter`); undefined = off. */
  color?: { brightness: number; contrast: number; saturation: number; hue: number };
}

export const DEFAULT_CROP_AUGMENT: CropAugment = {
  geometry: true,
  hed: { sigma: 0.05, bias: 0.02 },
  color: { brightness: 0.1, contrast: 0.1, saturation: 0.1, hue: 0.02 },
};

/** One of the 8 symmetries of the square (k quarter turns, then an optional mirror). */
export function dihedral(img: RgbImage, k: number, mirror: boolean): RgbImage {
  const S = img.width;
  if (img.height !== S) throw new RangeError('dihedral: crop is not square');
  const out = new Float32Array(img.data.length);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      let sx = mirror ? S - 1 - x : x;
      let sy = y;
      for (let r = 0; r < (k & 3); r++) [sx, sy] = [sy, S - 1 - sx];
      const o = (y * S + x) * 3;
      const i = (sy * S + sx) * 3;
      out[o] = img.data[i]!;
      out[o + 1] = img.data[i + 1]!;
      out[o + 2] = img.data[i + 2]!;
    }
  }
  return { data: out, width: S, height: S };
}

/** A randomly augmented copy of a crop (the input is not modified). */
export function augmentCrop(rng: Rng, img: RgbImage, a: CropAugment = DEFAULT_CROP_AUGMENT): RgbImage {
  let out = img;
  if (a.geometry) out = dihedral(out, rng.int(0, 3), rng.bool());
  if (a.hed) out = hedJitter(rng, out, a.hed);
  if (a.color) out = colorJitter(rng, out, a.color);
  return out;
}
