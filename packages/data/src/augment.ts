import { type ColorJitterOptions, colorJitter, type HedJitterOptions, hedJitter } from './color.js';
import { crop, hflip, normalizeImageNet, pad, resize, roundUp, vflip } from './geometry.js';
import type { Rng } from './rng.js';
import type { Sample } from './sample.js';

/**
 * What happens to a sample, in this order: resize so the longer side is `size` times a random
 * `scale`, crop to at most `size` x `size` (random position when `crop` is set), flips, colour
 * jitter, HED stain jitter, pad right/bottom to a multiple of `multiple`, ImageNet normalisation.
 */
export interface AugmentConfig {
  /** Target side: the longer image side is resized to it and the output is `size` x `size` (padded). */
  readonly size?: number;
  /** Random scale factor range on top of `size`, e.g. `[0.8, 1.25]`. */
  readonly scale?: readonly [number, number];
  /** Random crop position when the scaled image exceeds `size`; boxes keep if `minVisible` (default 0.5) of their area stays. */
  readonly crop?: { readonly minVisible?: number };
  /** Probability of a left-right flip. */
  readonly hflip?: number;
  /** Probability of a top-bottom flip (smears have no up). */
  readonly vflip?: number;
  readonly colorJitter?: ColorJitterOptions;
  readonly hed?: HedJitterOptions;
  /** Pad to a multiple of this (default 32, the coarsest stride of the network). */
  readonly multiple?: number;
  /** Subtract the ImageNet mean and divide by the std. */
  readonly normalize?: boolean;
}

/** A training default for smears at `size` x `size`. */
export function defaultTrainAugment(size: number): AugmentConfig {
  return {
    size,
    scale: [0.8, 1.25],
    crop: { minVisible: 0.5 },
    hflip: 0.5,
    vflip: 0.5,
    colorJitter: { brightness: 0.15, contrast: 0.15, saturation: 0.15, hue: 0.02 },
    hed: { sigma: 0.05, bias: 0.05 },
    normalize: true,
  };
}

/** Evaluation: resize, pad and normalise only. */
export function defaultEvalAugment(size: number): AugmentConfig {
  return { size, normalize: true };
}

/** Output size (before crop and pad) for an input of `width` x `height`; draws the random scale. */
export function drawResize(
  rng: Rng,
  width: number,
  height: number,
  cfg: AugmentConfig,
): { width: number; height: number } {
  let f = cfg.size !== undefined ? cfg.size / Math.max(width, height) : 1;
  if (cfg.scale) f *= rng.uniform(cfg.scale[0], cfg.scale[1]);
  return { width: Math.max(1, Math.round(width * f)), height: Math.max(1, Math.round(height * f)) };
}

/** The pipeline after resizing (the loader resizes while decoding, in libvips). */
export function augmentResized(rng: Rng, s: Sample, cfg: AugmentConfig): Sample {
  if (cfg.size !== undefined && (s.image.width > cfg.size || s.image.height > cfg.size)) {
    const cw = Math.min(cfg.size, s.image.width);
    const ch = Math.min(cfg.size, s.image.height);
    const x = cfg.crop ? rng.int(0, s.image.width - cw) : 0;
    const y = cfg.crop ? rng.int(0, s.image.height - ch) : 0;
    s = crop(s, x, y, cw, ch, cfg.crop?.minVisible ?? 0.5);
  }
  if (cfg.hflip && rng.bool(cfg.hflip)) s = hflip(s);
  if (cfg.vflip && rng.bool(cfg.vflip)) s = vflip(s);
  if (cfg.colorJitter) s = { ...s, image: colorJitter(rng, s.image, cfg.colorJitter) };
  if (cfg.hed) s = { ...s, image: hedJitter(rng, s.image, cfg.hed) };
  const m = cfg.multiple ?? 32;
  s = pad(s, roundUp(cfg.size ?? s.image.width, m), roundUp(cfg.size ?? s.image.height, m));
  if (cfg.normalize) s = { ...s, image: normalizeImageNet(s.image) };
  return s;
}

/** Applies `cfg` to a sample; the same rng state gives the same output. */
export function augment(rng: Rng, s: Sample, cfg: AugmentConfig): Sample {
  const { width, height } = drawResize(rng, s.image.width, s.image.height, cfg);
  if (width !== s.image.width || height !== s.image.height) s = resize(s, width, height);
  return augmentResized(rng, s, cfg);
}
