import type { RawPixels } from '../pipeline/types.js';

/** A coarse map of where tissue is: one byte per pixel of a low-resolution level, 1 = tissue. */
export interface TissueMask {
  readonly width: number;
  readonly height: number;
  /** Level-0 pixels per mask pixel, along x and y. */
  readonly scaleX: number;
  readonly scaleY: number;
  readonly data: Uint8Array;
}

/**
 * Tissue where a low-resolution pixel is darker or more coloured than glass: its darkest channel
 * below `maxMin` or its chroma (max - min channel) above `minChroma`. Glass in bright-field scans is
 * near-white and grey; stained cells are dark and saturated even averaged over 16 x 16 pixels. The
 * mask is dilated by one pixel so a cell on a mask pixel's edge still counts.
 */
export function tissueMask(
  thumb: RawPixels,
  level0: { width: number; height: number },
  { maxMin = 215, minChroma = 24 } = {},
): TissueMask {
  const { width, height, channels, data } = thumb;
  const raw = new Uint8Array(width * height);
  for (let i = 0, o = 0; i < raw.length; i++, o += channels) {
    const r = data[o]!;
    const g = data[o + 1]!;
    const b = data[o + 2]!;
    const lo = Math.min(r, g, b);
    if (lo < maxMin || Math.max(r, g, b) - lo > minChroma) raw[i] = 1;
  }
  const mask = new Uint8Array(raw.length);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      if (!raw[y * width + x]) continue;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < height && xx >= 0 && xx < width) mask[yy * width + xx] = 1;
        }
    }
  return { width, height, scaleX: level0.width / width, scaleY: level0.height / height, data: mask };
}

/** Whether any tissue lies under a rectangle given in level-0 pixels. */
export function hasTissue(m: TissueMask, x: number, y: number, w: number, h: number): boolean {
  const x0 = Math.max(0, Math.floor(x / m.scaleX));
  const y0 = Math.max(0, Math.floor(y / m.scaleY));
  const x1 = Math.min(m.width, Math.ceil((x + w) / m.scaleX));
  const y1 = Math.min(m.height, Math.ceil((y + h) / m.scaleY));
  for (let yy = y0; yy < y1; yy++)
    for (let xx = x0; xx < x1; xx++) if (m.data[yy * m.width + xx]) return true;
  return false;
}

/**
 * The colour of the slide's glass: the per-channel median of the low-resolution pixels that the
 * tissue rule of {@link tissueMask} calls glass. Undefined when none is (a field of tissue only).
 */
export function glassColour(
  thumb: RawPixels,
  { maxMin = 215, minChroma = 24 } = {},
): [number, number, number] | undefined {
  const hist = [new Uint32Array(256), new Uint32Array(256), new Uint32Array(256)];
  let n = 0;
  for (let o = 0; o < thumb.width * thumb.height * thumb.channels; o += thumb.channels) {
    const r = thumb.data[o]!;
    const g = thumb.data[o + 1]!;
    const b = thumb.data[o + 2]!;
    const lo = Math.min(r, g, b);
    if (lo < maxMin || Math.max(r, g, b) - lo > minChroma) continue;
    hist[0]![r]!++;
    hist[1]![g]!++;
    hist[2]![b]!++;
    n++;
  }
  if (!n) return undefined;
  const median = (h: Uint32Array) => {
    let seen = 0;
    for (let v = 0; v < 256; v++) if ((seen += h[v]!) * 2 >= n) return v;
    return 255;
  };
  return [median(hist[0]!), median(hist[1]!), median(hist[2]!)];
}

/** Fraction of the mask that is tissue. */
export function tissueFraction(m: TissueMask): number {
  let n = 0;
  for (const v of m.data) n += v;
  return n / m.data.length;
}
