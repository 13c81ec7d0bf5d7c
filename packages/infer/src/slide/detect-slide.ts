import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Detector } from '../model.js';
import { mergeTiles } from '../pipeline/detect.js';
import type { RawDetections } from '../pipeline/postprocess.js';
import { applyPixelScale, DEFAULT_TILE_SIZE } from '../pipeline/scale.js';
import { planTiles, type Tile } from '../pipeline/tiling.js';
import type { Detection, DetectOptions, RawPixels } from '../pipeline/types.js';
import {
  levelForSide,
  openSlide,
  pickLevel,
  type Slide,
  type SlideLevel,
  writeTiledPyramid,
} from './open.js';
import { hasTissue, type TissueMask, tissueFraction, tissueMask } from './tissue.js';

export interface SlideDetectOptions extends DetectOptions {
  /**
   * Level-0 pixels per network pixel: picks the pyramid level (the nearest one). Default 1, the
   * scale of a native model (trained at source resolution on crops); a slide scanned at a finer
   * resolution than the training images needs their ratio here.
   */
  downsample?: number;
  /** Process every tile, glass included (no tissue mask). */
  noTissueMask?: boolean;
  /** Called after each tile run (`done` of the tiles with tissue). */
  onTile?: (done: number, total: number) => void;
}

export interface SlideResult {
  /** Level-0 size; detections are in level-0 pixels. */
  width: number;
  height: number;
  level: SlideLevel;
  /** Highest score first, every candidate above the model's candidate threshold. */
  detections: Detection[];
  /** Tiles planned over the level, run through the network, and skipped as glass. */
  tiles: { planned: number; run: number; skipped: number };
  /** Fraction of the low-resolution mask that is tissue. */
  tissue: number;
  /** The low-resolution image the mask came from (the overview is drawn on it). */
  thumbnail: RawPixels;
}

/** Longer side of the low-resolution image the tissue mask and the overview use. */
const THUMB_MIN_SIDE = 2048;
const THUMB_MAX_SIDE = 4096;

/**
 * Detects cells on a whole slide without decoding it: tiles are planned over the chosen pyramid
 * level as `detectPixels` plans them over an image (same size, overlap and cores), glass tiles
 * are skipped by a tissue mask from a low-resolution level, each remaining tile is read alone
 * (only the TIFF tiles under it are decoded) and detected, and the tiles' detections are merged
 * with the same cross-tile NMS. Memory holds one tile's pixels, the thumbnail and the detections,
 * whatever the slide's size. A large PNG/JPEG (not tiled) is first converted, streaming, to a
 * temporary tiled pyramidal TIFF so that region reads do not decode the whole file each time.
 */
export async function detectSlide(
  detector: Detector,
  file: string,
  opts: SlideDetectOptions = {},
): Promise<SlideResult> {
  let tmp: string | undefined;
  try {
    let slide = await openSlide(file);
    if (slide.levels.length === 1) {
      tmp = await mkdtemp(join(tmpdir(), 'bmc-slide-'));
      const tiled = join(tmp, 'slide.tif');
      await writeTiledPyramid(file, tiled);
      slide = await openSlide(tiled);
    }
    return await detectOnSlide(detector, slide, opts);
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

/** What a slide run does: the level, its tiles, which of them hold tissue, and the thumbnail. */
export interface SlidePlan {
  level: SlideLevel;
  tiles: Tile[];
  /** Indices into `tiles` of the tiles to run (all of them without a tissue mask). */
  toRun: number[];
  tissue: number;
  thumbnail: RawPixels;
}

/**
 * Plans a slide: the pyramid level nearest `opts.downsample`, tiles over it as `detectPixels`
 * plans them over an image, and the tiles with tissue. A queue submitter makes one job per
 * `toRun` tile from this; the single-process run loops over them.
 */
export async function planSlide(
  slide: Slide,
  meta: Detector['meta'],
  opts: SlideDetectOptions = {},
): Promise<SlidePlan> {
  const level = pickLevel(slide.levels, opts.downsample ?? 1);
  const applied = applyPixelScale(meta, { tileSize: opts.tileSize, tileOverlap: opts.tileOverlap });
  const tileSize = applied.tileSize > 0 ? applied.tileSize : DEFAULT_TILE_SIZE;
  const overlap = applied.tileSize > 0 ? applied.tileOverlap : Math.min(128, tileSize / 4);
  const tiles = planTiles(level.width, level.height, tileSize, overlap, meta.input.sizeMultiple);
  const thumbnail = await readThumbnail(slide);
  const mask: TissueMask | undefined = opts.noTissueMask
    ? undefined
    : tissueMask(thumbnail, { width: slide.width, height: slide.height });
  const ds = level.downsample;
  const toRun: number[] = [];
  tiles.forEach((t, i) => {
    if (!mask || hasTissue(mask, t.x * ds, t.y * ds, t.width * ds, t.height * ds)) toRun.push(i);
  });
  return { level, tiles, toRun, tissue: mask ? tissueFraction(mask) : 1, thumbnail };
}

/** One tile of a slide: read alone, detected, its detections in level pixels kept where its core owns them. */
export async function detectSlideTile(
  detector: Detector,
  slide: Slide,
  level: SlideLevel,
  tile: Tile,
  opts: DetectOptions = {},
): Promise<RawDetections> {
  const pixels = await slide.read(level, {
    left: tile.x,
    top: tile.y,
    width: tile.width,
    height: tile.height,
  });
  const res = await detector.detect(pixels, { ...opts, tileSize: 0, resizeLongSide: 0 });
  return inCore(res.detections, tile);
}

/** The slide's detections from its tiles' (any order): cross-tile NMS, boxes in level-0 pixels. */
export function assembleSlide(
  parts: RawDetections[],
  level: SlideLevel,
  meta: Detector['meta'],
  opts: DetectOptions = {},
): Detection[] {
  const merged = parts.length
    ? mergeTiles(parts, meta, opts)
    : { boxes: new Float32Array(0), scores: new Float32Array(0), classes: new Int32Array(0) };
  const ds = level.downsample;
  const detections: Detection[] = [];
  for (let i = 0; i < merged.scores.length; i++) {
    const o = i * 4;
    const c = merged.classes[i]!;
    const b = merged.boxes;
    detections.push({
      box: [b[o]! * ds, b[o + 1]! * ds, b[o + 2]! * ds, b[o + 3]! * ds],
      score: merged.scores[i]!,
      classId: c,
      className: meta.classNames[c] ?? String(c),
    });
  }
  return detections;
}

async function detectOnSlide(
  detector: Detector,
  slide: Slide,
  opts: SlideDetectOptions,
): Promise<SlideResult> {
  const plan = await planSlide(slide, detector.meta, opts);
  const parts: RawDetections[] = [];
  let done = 0;
  for (const i of plan.toRun) {
    opts.signal?.throwIfAborted();
    parts.push(await detectSlideTile(detector, slide, plan.level, plan.tiles[i]!, opts));
    opts.onTile?.(++done, plan.toRun.length);
  }
  return {
    width: slide.width,
    height: slide.height,
    level: plan.level,
    detections: assembleSlide(parts, plan.level, detector.meta, opts),
    tiles: {
      planned: plan.tiles.length,
      run: plan.toRun.length,
      skipped: plan.tiles.length - plan.toRun.length,
    },
    tissue: plan.tissue,
    thumbnail: plan.thumbnail,
  };
}

/** A tile's detections in level pixels, keeping those centred in the tile's core (as `detectPixels` does). */
function inCore(dets: readonly Detection[], tile: Tile): RawDetections {
  const keep = dets.filter((d) => {
    const cx = (d.box[0] + d.box[2]) / 2 + tile.x;
    const cy = (d.box[1] + d.box[3]) / 2 + tile.y;
    return cx >= tile.coreX0 && cx < tile.coreX1 && cy >= tile.coreY0 && cy < tile.coreY1;
  });
  const out: RawDetections = {
    boxes: new Float32Array(keep.length * 4),
    scores: new Float32Array(keep.length),
    classes: new Int32Array(keep.length),
  };
  keep.forEach((d, j) => {
    out.boxes.set([d.box[0] + tile.x, d.box[1] + tile.y, d.box[2] + tile.x, d.box[3] + tile.y], j * 4);
    out.scores[j] = d.score;
    out.classes[j] = d.classId;
  });
  return out;
}

/** The low-resolution image for the tissue mask and the overview: a pyramid level of 2048-4096 px. */
async function readThumbnail(slide: Slide): Promise<RawPixels> {
  const level = levelForSide(slide.levels, THUMB_MIN_SIDE);
  const long = Math.max(level.width, level.height);
  let img = sharp(slide.file, { limitInputPixels: false, page: level.page });
  if (long > THUMB_MAX_SIDE)
    img = img.resize({ width: THUMB_MAX_SIDE, height: THUMB_MAX_SIDE, fit: 'inside' });
  const { data, info } = await img
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: 3 };
}
