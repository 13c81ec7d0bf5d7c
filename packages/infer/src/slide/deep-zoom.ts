import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import sharp from 'sharp';
import { fileIdentity } from '../jobs/tile-store.js';

/** The descriptor and the tile folder inside a slide's deep-zoom folder (`slides/<name>.dz/`). */
export const DZI_FILE = 'slide.dzi';
export const DZI_TILES = 'slide_files';
/** What the pyramid was written from and how: a rerun with the same stamp keeps the folder. */
const STAMP_FILE = 'deep-zoom.json';

export interface DeepZoomOptions {
  /** Tile side without the overlap. Default 254 (with a 1 px overlap: 256 px tiles, the Deep Zoom convention). */
  tileSize?: number;
  /** Pixels each tile repeats from its neighbours. Default 1. */
  overlap?: number;
  /** JPEG quality of the tiles. Default 80. */
  quality?: number;
  /**
   * The slide's glass colour (see `glassColour`): tiles whose every pixel is within
   * `glassTolerance` of it are not written (the viewer shows the glass colour there). Without it
   * every tile is written.
   */
  glass?: readonly [number, number, number];
  /** Largest per-channel difference from `glass` that still counts as glass. Default 8. */
  glassTolerance?: number;
}

export interface DeepZoomInfo {
  /** The folder holding {@link DZI_FILE} and {@link DZI_TILES}. */
  dir: string;
  width: number;
  height: number;
  tileSize: number;
  overlap: number;
  /** `#rrggbb` of the glass, when glass tiles were skipped. */
  glass?: string;
  /** The folder was already there for the same slide and settings, and was kept. */
  reused: boolean;
}

const hex = (c: readonly number[]) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;

/**
 * Writes a Deep Zoom (DZI) pyramid of `source` (level 0 of a slide, or a large image) into the
 * folder `dest` with libvips' dzsave, streaming (memory holds a few rows of tiles, whatever the
 * slide's size). Deep Zoom levels halve, rounding up, from the full size down to 1 x 1 px; each
 * level is cut into `tileSize` tiles plus `overlap` px from each neighbour, as
 * `slide_files/<level>/<column>_<row>.jpeg`. Written in a temporary folder beside `dest` and
 * renamed, so `dest` is either the whole pyramid or absent (or the previous one); a rerun for the
 * same slide file (same identity) and settings keeps the existing folder.
 */
export async function writeDeepZoom(
  source: string,
  dest: string,
  opts: DeepZoomOptions = {},
): Promise<DeepZoomInfo> {
  const tileSize = opts.tileSize ?? 254;
  const overlap = opts.overlap ?? 1;
  const quality = opts.quality ?? 80;
  const tolerance = opts.glassTolerance ?? 8;
  const img = sharp(source, { limitInputPixels: false, sequentialRead: true, failOn: 'error' });
  const m = await img.metadata();
  const stamp = JSON.stringify({
    v: 1,
    source: await fileIdentity(source),
    width: m.width,
    height: m.height,
    tileSize,
    overlap,
    quality,
    ...(opts.glass ? { glass: hex(opts.glass), tolerance } : {}),
  });
  const info = (reused: boolean): DeepZoomInfo => ({
    dir: dest,
    width: m.width!,
    height: m.height!,
    tileSize,
    overlap,
    ...(opts.glass ? { glass: hex(opts.glass) } : {}),
    reused,
  });
  if ((await readFile(join(dest, STAMP_FILE), 'utf8').catch(() => undefined)) === stamp) return info(true);

  const parent = dirname(dest);
  const prefix = `.${basename(dest)}.tmp-`;
  await mkdir(parent, { recursive: true });
  // A run killed while writing leaves its temporary folder behind: the next run clears it.
  for (const f of await readdir(parent))
    if (f.startsWith(prefix)) await rm(join(parent, f), { recursive: true, force: true });
  const tmp = join(parent, `${prefix}${process.pid}`);
  await mkdir(tmp);
  try {
    await img
      .removeAlpha()
      .toColourspace('srgb')
      .jpeg({ quality })
      .tile({
        size: tileSize,
        overlap,
        layout: 'dz',
        ...(opts.glass
          ? {
              skipBlanks: tolerance,
              background: { r: opts.glass[0], g: opts.glass[1], b: opts.glass[2] },
            }
          : {}),
      })
      .toFile(join(tmp, basename(DZI_FILE, '.dzi')));
    // libvips' metadata dump (the source's TIFF tags) is not part of the pyramid.
    await rm(join(tmp, DZI_TILES, 'vips-properties.xml'), { force: true });
    await writeFile(join(tmp, STAMP_FILE), stamp);
    const old = `${tmp}.old`;
    const replaced = await rename(dest, old).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw e;
      },
    );
    await rename(tmp, dest);
    if (replaced) await rm(old, { recursive: true, force: true });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return info(false);
}
