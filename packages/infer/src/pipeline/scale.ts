import type { BmcMetadata } from '@bmc/export/metadata';

/** Tile side for models that record no native crop (and for letterboxed images above it). */
export const DEFAULT_TILE_SIZE = 1024;
/** Overlap between tiles: above the largest cell of typical fields. Small tiles get a quarter of their side. */
export const DEFAULT_TILE_OVERLAP = 128;

/** The explicit settings a caller may give; each one left out comes from the model. */
export interface ScaleOverrides {
  /** Resize so the longer side is this many pixels; 0: source resolution. */
  resizeLongSide?: number;
  /** Tile images whose longer side (after any resize) exceeds this; 0: never tile. */
  tileSize?: number;
  /** Overlap between neighbouring tiles, in network pixels. */
  tileOverlap?: number;
}

/** What a detection run applies: the model's recorded pixel scale with the caller's overrides. */
export interface AppliedScale {
  /** Longer side after resizing; 0: the image runs at source resolution. */
  resizeLongSide: number;
  tileSize: number;
  tileOverlap: number;
  /**
   * Where the resize came from: the model's `pixelScale`, the caller, or neither (a
   * model exported before bmc recorded its scale runs at source resolution, as then).
   */
  source: 'model' | 'override' | 'unrecorded';
  /** One line for a user: which scale applies and why. */
  description: string;
}

/**
 * The pixel scale `detectPixels` applies to `meta`'s model unless told otherwise:
 * a letterbox model gets its images resized so the longer side is the training
 * side; a native model runs at source resolution, tiled with tiles the size of
 * its training crops (the network then sees exactly the input size it learnt
 * on, and a tile costs no more memory than a training crop). The trainer's
 * validation calls this too, so evaluation and `bmc detect` scale alike.
 */
export function applyPixelScale(
  meta: Pick<BmcMetadata, 'pixelScale' | 'input'>,
  o: ScaleOverrides = {},
): AppliedScale {
  const ps = meta.pixelScale;
  const tileSize = o.tileSize ?? (ps?.mode === 'native' ? ps.crop : DEFAULT_TILE_SIZE);
  const tileOverlap = o.tileOverlap ?? Math.min(DEFAULT_TILE_OVERLAP, Math.floor(tileSize / 4));
  const trained = !ps
    ? undefined
    : ps.mode === 'native'
      ? `trained on ${ps.crop} px crops at source resolution`
      : `trained on images resized to ${ps.longSide} px (longer side)`;
  const tiling = tileSize > 0 ? `, tiled above ${tileSize} px (overlap ${tileOverlap})` : ', never tiled';
  if (o.resizeLongSide !== undefined) {
    const what = o.resizeLongSide > 0 ? `longer side resized to ${o.resizeLongSide} px` : 'source resolution';
    return {
      resizeLongSide: o.resizeLongSide,
      tileSize,
      tileOverlap,
      source: 'override',
      description: `pixel scale: ${what}${tiling} (explicit resize; the model was ${trained ?? 'exported without a recorded scale'})`,
    };
  }
  if (!ps) {
    const size = meta.input.trainSize ? Math.max(...meta.input.trainSize) : undefined;
    return {
      resizeLongSide: 0,
      tileSize,
      tileOverlap,
      source: 'unrecorded',
      description:
        `pixel scale: source resolution${tiling} (the model records no pixel scale: exported by an older bmc` +
        (size ? `, trained at ${size} px; if its training images were larger, resize to ${size}` : '') +
        ')',
    };
  }
  const resizeLongSide = ps.mode === 'letterbox' ? ps.longSide : 0;
  const what = resizeLongSide ? `longer side resized to ${resizeLongSide} px` : 'source resolution';
  return {
    resizeLongSide,
    tileSize,
    tileOverlap,
    source: 'model',
    description: `pixel scale: ${what}${tiling} (the model was ${trained})`,
  };
}
