import type { Region } from './preprocess.js';

/** A tile of the source image plus the part of it ("core") whose detections it owns. */
export interface Tile extends Region {
  /** Detections whose centre lies in `[coreX0, coreX1) x [coreY0, coreY1)` (source pixels) are kept. */
  coreX0: number;
  coreY0: number;
  coreX1: number;
  coreY1: number;
}

/**
 * Start offsets of windows of `size` covering `length`, neighbours sharing at
 * least `overlap` pixels, every start a multiple of `align`.
 */
function starts(length: number, size: number, overlap: number, align: number): number[] {
  if (length <= size) return [0];
  const step = Math.floor((size - overlap) / align) * align;
  if (step <= 0)
    throw new RangeError(`planTiles: tile ${size} minus overlap ${overlap} leaves no ${align}-aligned step`);
  const out = [0];
  while (out[out.length - 1]! + size < length) out.push(out[out.length - 1]! + step);
  return out;
}

/**
 * Overlapping tiles of at most `size` x `size` covering a `width` x `height`
 * image. Cores partition the image (each pixel belongs to exactly one core: the
 * boundary between neighbours sits in the middle of their overlap), so a cell
 * cut by one tile's edge is kept from the neighbour that sees it whole, as long
 * as the overlap is wider than the cell.
 */
export function planTiles(width: number, height: number, size: number, overlap: number, align = 1): Tile[] {
  if (!(size > 0)) throw new RangeError(`planTiles: tile size must be positive, got ${size}`);
  if (!(overlap >= 0 && overlap < size))
    throw new RangeError(`planTiles: overlap ${overlap} must be in [0, ${size})`);
  const xs = starts(width, size, overlap, align);
  const ys = starts(height, size, overlap, align);
  const cuts = (s: number[], length: number, tile: number) => {
    const c = [0];
    for (let i = 1; i < s.length; i++) c.push(Math.round((s[i]! + Math.min(s[i - 1]! + tile, length)) / 2));
    c.push(length);
    return c;
  };
  const cx = cuts(xs, width, size);
  const cy = cuts(ys, height, size);
  const tiles: Tile[] = [];
  ys.forEach((y, j) => {
    xs.forEach((x, i) => {
      tiles.push({
        x,
        y,
        width: Math.min(size, width - x),
        height: Math.min(size, height - y),
        coreX0: cx[i]!,
        coreX1: cx[i + 1]!,
        coreY0: cy[j]!,
        coreY1: cy[j + 1]!,
      });
    });
  });
  return tiles;
}
