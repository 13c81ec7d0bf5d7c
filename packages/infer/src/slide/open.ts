import { InputError } from '@bmc/core';
import sharp from 'sharp';
import type { RawPixels } from '../pipeline/types.js';

/** One resolution of a slide: a TIFF page (pyramid level) and its downsample from level 0. */
export interface SlideLevel {
  readonly page: number;
  readonly width: number;
  readonly height: number;
  /** Level-0 pixels per pixel of this level (1 for level 0). */
  readonly downsample: number;
}

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

/** A slide opened for region reads: its levels, finest first. */
export interface Slide {
  readonly file: string;
  readonly width: number;
  readonly height: number;
  readonly levels: readonly SlideLevel[];
  /** RGB pixels of `rect` (in `level`'s pixels). Only the tiles under `rect` are decoded. */
  read(level: SlideLevel, rect: Rect): Promise<RawPixels>;
}

/**
 * Images above this many pixels go through the slide path even when they are not pyramidal: their
 * decoded pixels (3 bytes each) would no longer fit comfortably in memory.
 */
export const SLIDE_MIN_PIXELS = 64e6;

/** libvips: never refuse a slide for its size (it is read region by region, never whole). */
const open = (file: string, page = 0) => sharp(file, { limitInputPixels: false, page, failOn: 'error' });

/**
 * Whether `file` is a slide: a pyramidal TIFF (pages that halve, as libvips, Aperio SVS and other
 * scanners write them) or any image above {@link SLIDE_MIN_PIXELS}. Reads headers only.
 */
export async function isSlide(file: string): Promise<boolean> {
  try {
    const m = await open(file).metadata();
    if (!m.width || !m.height) return false;
    if (m.width * m.height > SLIDE_MIN_PIXELS) return true;
    return (
      m.format === 'tiff' &&
      (m.pages ?? 1) > 1 &&
      (await levelsOf(file, m.width, m.height, m.pages ?? 1)).length > 1
    );
  } catch {
    return false; // not readable here: the image path reports why
  }
}

/**
 * The pages of a TIFF that form its pyramid: level 0, then each page whose aspect ratio matches
 * and which is smaller than the previous level. SVS files interleave a thumbnail, a label and a
 * macro image; those differ in aspect ratio (label, macro) or break the shrinking order
 * (thumbnail after level 0) and are left out.
 */
async function levelsOf(file: string, width: number, height: number, pages: number): Promise<SlideLevel[]> {
  const levels: SlideLevel[] = [{ page: 0, width, height, downsample: 1 }];
  for (let p = 1; p < pages; p++) {
    const m = await open(file, p).metadata();
    const w = m.width ?? 0;
    const h = m.height ?? 0;
    const last = levels[levels.length - 1]!;
    const ds = width / w;
    if (!(w > 0 && h > 0 && w < last.width && h < last.height)) continue;
    if (Math.abs(height / h - ds) > Math.max(1, ds * 0.02) * 2) continue; // another aspect ratio
    // An SVS thumbnail sits between level 0 and level 1 with an odd downsample: keep only levels
    // that a pyramid of 2x or 4x steps has (within rounding).
    const step = last.width / w;
    if (step < 1.9) continue;
    levels.push({ page: p, width: w, height: h, downsample: ds });
  }
  return levels;
}

/** Opens `file` for region reads. Throws an `InputError` naming it when it cannot be read. */
export async function openSlide(file: string): Promise<Slide> {
  let m: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
  try {
    m = await open(file).metadata();
  } catch (e) {
    throw new InputError(`${file}: cannot read slide (${(e as Error).message})`, file);
  }
  if (!m.width || !m.height) throw new InputError(`${file}: cannot read slide (no size in its header)`, file);
  const levels = m.format === 'tiff' ? await levelsOf(file, m.width, m.height, m.pages ?? 1) : undefined;
  return {
    file,
    width: m.width,
    height: m.height,
    levels: levels ?? [{ page: 0, width: m.width, height: m.height, downsample: 1 }],
    async read(level, rect) {
      const { data, info } = await open(file, level.page)
        .extract(rect)
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 3)
        throw new InputError(`${file}: expected RGB pixels, got ${info.channels} channels`, file);
      return { data, width: info.width, height: info.height, channels: 3 };
    },
  };
}

/**
 * The level whose downsample is nearest `downsample` (1: full resolution), preferring the finer
 * one on a tie so cells are never seen smaller than the model learnt them.
 */
export function pickLevel(levels: readonly SlideLevel[], downsample: number): SlideLevel {
  let best = levels[0]!;
  for (const l of levels)
    if (
      Math.abs(Math.log(l.downsample / downsample)) <
      Math.abs(Math.log(best.downsample / downsample)) - 1e-9
    )
      best = l;
  return best;
}

/** The coarsest level whose longer side is still at least `minSide` (level 0 when none is). */
export function levelForSide(levels: readonly SlideLevel[], minSide: number): SlideLevel {
  let best = levels[0]!;
  for (const l of levels)
    if (Math.max(l.width, l.height) >= minSide && l.downsample > best.downsample) best = l;
  return best;
}

/**
 * Writes `source` (a large PNG/JPEG, or a TIFF without a pyramid) as a tiled pyramidal BigTIFF,
 * streaming, so that region reads decode only the tiles under them instead of the whole file.
 */
export async function writeTiledPyramid(source: string, dest: string): Promise<void> {
  await sharp(source, { limitInputPixels: false, sequentialRead: true })
    .removeAlpha()
    .toColourspace('srgb')
    .tiff({
      tile: true,
      tileWidth: 512,
      tileHeight: 512,
      pyramid: true,
      bigtiff: true,
      compression: 'deflate',
    })
    .toFile(dest);
}
