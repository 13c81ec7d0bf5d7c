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
import { levelForSide, openSlide, pickLevel, type Slide, type SlideLevel } from './open.js';
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
  /** Called after each tile, run or skipped. */
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
      await sharp(file, { limitInputPixels: false, sequentialRead: true })
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
        .toFile(tiled);
      slide = await openSlide(tiled);
    }
    return await detectOnSlide(detector, slide, opts);
  } finally {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
}

async function detectOnSlide(
  detector: Detector,
  slide: Slide,
  opts: SlideDetectOptions,
): Promise<SlideResult> {
  const meta = detector.meta;
  const level = pickLevel(slide.levels, opts.downsample ?? 1);
  const applied = applyPixelScale(meta, { tileSize: opts.tileSize, tileOverlap: opts.tileOverlap });
  const tileSize = applied.tileSize > 0 ? applied.tileSize : DEFAULT_TILE_SIZE;
  const overlap = applied.tileSize > 0 ? applied.tileOverlap : Math.min(128, tileSize / 4);
  const tiles = planTiles(level.width, level.height, tileSize, overlap, meta.input.sizeMultiple);

  const thumbnail = await readThumbnail(slide);
  const mask: TissueMask | undefined = opts.noTissueMask
    ? undefined
    : tissueMask(thumbnail, { width: slide.width, height: slide.height });

  const parts: RawDetections[] = [];
  let run = 0;
  let skipped = 0;
  const perTile: DetectOptions = { ...opts, tileSize: 0, resizeLongSide: 0 };
  for (const tile of tiles) {
    opts.signal?.throwIfAborted();
    const ds = level.downsample;
    if (mask && !hasTissue(mask, tile.x * ds, tile.y * ds, tile.width * ds, tile.height * ds)) {
      skipped++;
    } else {
      const pixels = await slide.read(level, {
        left: tile.x,
        top: tile.y,
        width: tile.width,
        height: tile.height,
      });
      const res = await detector.detect(pixels, perTile);
      parts.push(inCore(res.detections, tile));
      run++;
    }
    opts.onTile?.(run + skipped, tiles.length);
  }
  const merged = parts.length
    ? mergeTiles(parts, meta, opts)
    : { boxes: new Float32Array(0), scores: new Float32Array(0), classes: new Int32Array(0) };
  const detections: Detection[] = [];
  for (let i = 0; i < merged.scores.length; i++) {
    const o = i * 4;
    const c = merged.classes[i]!;
    const b = merged.boxes;
    detections.push({
      box: [
        b[o]! * level.downsample,
        b[o + 1]! * level.downsample,
        b[o + 2]! * level.downsample,
        b[o + 3]! * level.downsample,
      ],
      score: merged.scores[i]!,
      classId: c,
      className: meta.classNames[c] ?? String(c),
    });
  }
  return {
    width: slide.width,
    height: slide.height,
    level,
    detections,
    tiles: { planned: tiles.length, run, skipped },
    tissue: mask ? tissueFraction(mask) : 1,
    thumbnail,
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
