import {
  type ColorJitterOptions,
  colorJitterMatrix,
  drawColorJitter,
  drawHedJitter,
  type HedJitterOptions,
  type HedLut,
  hedLut,
  LUT_BINS,
  meanLuma,
} from './color.js';
import { cropBoxes, IMAGENET_MEAN, IMAGENET_STD, resize, roundUp } from './geometry.js';
import type { Rng } from './rng.js';
import type { Sample } from './sample.js';

/**
 * What happens to a sample, in this order: resize so the longer side is `size` times a random
 * `scale` (or, with `sampling: 'crops'`, by the random `scale` alone), crop to at most `size` x
 * `size` (random position when `crop` is set), flips, colour jitter, HED stain jitter, pad
 * right/bottom to a multiple of `multiple`, ImageNet normalisation.
 */
export interface AugmentConfig {
  /** Output side: the output is `size` x `size` (padded); in letterbox sampling the longer image side is resized to it. */
  readonly size?: number;
  /**
   * How images meet `size`. 'letterbox' (default): the longer side is resized to `size`, so
   * cells shrink with the field. 'crops': source pixels are kept (only the random `scale`
   * resizes, so set it around 1) and a `size` x `size` crop is cut: cells keep their source
   * size whatever the field size, and a step's memory no longer depends on the image size.
   */
  readonly sampling?: 'letterbox' | 'crops';
  /** Random scale factor range on top of `size`, e.g. `[0.8, 1.25]`. */
  readonly scale?: readonly [number, number];
  /**
   * Random crop position when the scaled image exceeds `size`; boxes keep if `minVisible`
   * (default 0.5) of their area stays. With probability `onBox` (default 0) the crop is drawn
   * among the positions that contain the centre of a random box, so that crops of large,
   * sparsely populated fields still show cells.
   */
  readonly crop?: { readonly minVisible?: number; readonly onBox?: number };
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
  let f = cfg.size !== undefined && cfg.sampling !== 'crops' ? cfg.size / Math.max(width, height) : 1;
  if (cfg.scale) f *= rng.uniform(cfg.scale[0], cfg.scale[1]);
  return { width: Math.max(1, Math.round(width * f)), height: Math.max(1, Math.round(height * f)) };
}

/**
 * The pipeline after resizing (the loader resizes while decoding, in libvips). Crop, flips,
 * colour jitter, stain jitter, padding and normalisation run as one pass over the output
 * pixels: the step-by-step composition of {@link crop}, {@link hflip}, {@link colorJitter},
 * {@link hedJitter}, {@link pad} and {@link normalizeImageNet} gives the same result (tested)
 * but allocates and walks a 512 x 512 image six times.
 */
export function augmentResized(rng: Rng, s: Sample, cfg: AugmentConfig): Sample {
  const { width: W, height: H, data } = s.image;
  let x0 = 0;
  let y0 = 0;
  let cw = W;
  let ch = H;
  let boxes: number[] = Array.from(s.boxes);
  let labels: number[] = Array.from(s.labels);
  if (cfg.size !== undefined && (W > cfg.size || H > cfg.size)) {
    cw = Math.min(cfg.size, W);
    ch = Math.min(cfg.size, H);
    if (cfg.crop) ({ x0, y0 } = drawCropOrigin(rng, s.boxes, W, H, cw, ch, cfg.crop.onBox ?? 0));
    ({ boxes, labels } = cropBoxes(s.boxes, s.labels, x0, y0, cw, ch, cfg.crop?.minVisible ?? 0.5));
  }
  const fx = cfg.hflip ? rng.bool(cfg.hflip) : false;
  const fy = cfg.vflip ? rng.bool(cfg.vflip) : false;
  for (let i = 0; i < boxes.length; i += 4) {
    if (fx) [boxes[i], boxes[i + 2]] = [cw - boxes[i + 2]!, cw - boxes[i]!];
    if (fy) [boxes[i + 1], boxes[i + 3]] = [ch - boxes[i + 3]!, ch - boxes[i + 1]!];
  }

  let jitter: { M: number[][]; off: number[] } | undefined;
  if (cfg.colorJitter) {
    const draw = drawColorJitter(rng, cfg.colorJitter);
    let sum = 0;
    for (let y = y0; y < y0 + ch; y++) sum += meanLuma(data, (y * W + x0) * 3, (y * W + x0 + cw) * 3) * cw;
    jitter = colorJitterMatrix(draw, sum / (cw * ch));
  }
  let hed: HedLut | undefined;
  if (cfg.hed) {
    const { alpha, beta } = drawHedJitter(rng, cfg.hed);
    hed = hedLut(alpha, beta);
  }

  const m = cfg.multiple ?? 32;
  const OW = roundUp(cfg.size ?? cw, m);
  const OH = roundUp(cfg.size ?? ch, m);
  const out = new Float32Array(OW * OH * 3);
  const mean = IMAGENET_MEAN;
  const inv = IMAGENET_STD.map((v) => 1 / v);
  const norm = cfg.normalize === true;
  if (!norm) {
    for (let i = 0; i < OW * OH; i++) {
      out[3 * i] = mean[0];
      out[3 * i + 1] = mean[1];
      out[3 * i + 2] = mean[2];
    }
  }
  const affineM = new Float64Array(12);
  if (jitter) {
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) affineM[r * 4 + c] = jitter.M[r]![c]!;
      affineM[r * 4 + 3] = jitter.off[r]!;
    }
  }
  const normP = Float64Array.from(norm ? [...mean, ...inv] : [0, 0, 0, 1, 1, 1]);
  copyRegion(data, W, x0, y0, cw, ch, fx, fy, out, OW);
  photometric(
    out,
    OW,
    cw,
    ch,
    jitter ? affineM : null,
    hed ? hed.lut : null,
    Float64Array.from(hed?.scale ?? [1, 1, 1]),
    normP,
  );
  return {
    ...s,
    image: { data: out, width: OW, height: OH },
    boxes: Float32Array.from(boxes),
    labels: Int32Array.from(labels),
  };
}

/**
 * Top-left corner of a `cw` x `ch` crop of a `W` x `H` image: uniform, or (with probability
 * `onBox`, when there are boxes) uniform among the corners whose crop contains the centre of
 * one box drawn at random, so every cell is equally likely to be the one shown.
 */
function drawCropOrigin(
  rng: Rng,
  boxes: Float32Array,
  W: number,
  H: number,
  cw: number,
  ch: number,
  onBox: number,
): { x0: number; y0: number } {
  const n = boxes.length / 4;
  if (onBox > 0 && n > 0 && rng.bool(onBox)) {
    const k = rng.int(0, n - 1);
    const cx = (boxes[4 * k]! + boxes[4 * k + 2]!) / 2;
    const cy = (boxes[4 * k + 1]! + boxes[4 * k + 3]!) / 2;
    const range = (c: number, size: number, full: number) => {
      const lo = Math.min(Math.max(Math.floor(c - size) + 1, 0), full - size);
      return rng.int(lo, Math.max(lo, Math.min(Math.floor(c), full - size)));
    };
    const x0 = range(cx, cw, W);
    return { x0, y0: range(cy, ch, H) };
  }
  const x0 = rng.int(0, W - cw);
  return { x0, y0: rng.int(0, H - ch) };
}

/** Copies the `cw` x `ch` region at `(x0, y0)` of a `W`-wide image into the top-left of `out` (`OW` wide), flipped as asked. */
function copyRegion(
  data: Float32Array,
  W: number,
  x0: number,
  y0: number,
  cw: number,
  ch: number,
  fx: boolean,
  fy: boolean,
  out: Float32Array,
  OW: number,
): void {
  for (let oy = 0; oy < ch; oy++) {
    const sy = y0 + (fy ? ch - 1 - oy : oy);
    if (!fx) {
      out.set(data.subarray((sy * W + x0) * 3, (sy * W + x0 + cw) * 3), oy * OW * 3);
      continue;
    }
    let o = oy * OW * 3;
    for (let ox = cw - 1; ox >= 0; ox--) {
      const si = (sy * W + x0 + ox) * 3;
      out[o++] = data[si]!;
      out[o++] = data[si + 1]!;
      out[o++] = data[si + 2]!;
    }
  }
}

/**
 * In place over the `cw` x `ch` content of `out`: colour affine `M` (rows `[m0 m1 m2 off]`,
 * clipped to [0, 1]), the tabulated HED transform, then `(x - mean) * invStd`. A small
 * monomorphic function: V8 optimises it far better than the same loop inlined into the
 * many-branched pipeline.
 */
function photometric(
  out: Float32Array,
  OW: number,
  cw: number,
  ch: number,
  M: Float64Array | null,
  lut: Float32Array | null,
  hedScale: Float64Array,
  norm: Float64Array,
): void {
  const n = LUT_BINS;
  const N1 = n + 1;
  const mean0 = norm[0]!;
  const mean1 = norm[1]!;
  const mean2 = norm[2]!;
  const inv0 = norm[3]!;
  const inv1 = norm[4]!;
  const inv2 = norm[5]!;
  for (let oy = 0; oy < ch; oy++) {
    const end = (oy * OW + cw) * 3;
    for (let o = oy * OW * 3; o < end; o += 3) {
      let r = out[o]!;
      let g = out[o + 1]!;
      let b = out[o + 2]!;
      if (M !== null) {
        const r2 = M[0]! * r + M[1]! * g + M[2]! * b + M[3]!;
        const g2 = M[4]! * r + M[5]! * g + M[6]! * b + M[7]!;
        const b2 = M[8]! * r + M[9]! * g + M[10]! * b + M[11]!;
        r = r2 < 0 ? 0 : Math.min(r2, 1);
        g = g2 < 0 ? 0 : Math.min(g2, 1);
        b = b2 < 0 ? 0 : Math.min(b2, 1);
      }
      if (lut !== null) {
        // Input channel c's three power curves are rows 3c, 3c + 1, 3c + 2 of the table.
        let x = (r < 0 ? 0 : Math.min(r, 1)) * n;
        let k = x >= n ? n - 1 : x | 0;
        let f = x - k;
        let i = k;
        let p0 = hedScale[0]! * (lut[i]! + (lut[i + 1]! - lut[i]!) * f);
        let p1 = hedScale[1]! * (lut[i + N1]! + (lut[i + N1 + 1]! - lut[i + N1]!) * f);
        let p2 = hedScale[2]! * (lut[i + 2 * N1]! + (lut[i + 2 * N1 + 1]! - lut[i + 2 * N1]!) * f);
        x = (g < 0 ? 0 : Math.min(g, 1)) * n;
        k = x >= n ? n - 1 : x | 0;
        f = x - k;
        i = 3 * N1 + k;
        p0 *= lut[i]! + (lut[i + 1]! - lut[i]!) * f;
        p1 *= lut[i + N1]! + (lut[i + N1 + 1]! - lut[i + N1]!) * f;
        p2 *= lut[i + 2 * N1]! + (lut[i + 2 * N1 + 1]! - lut[i + 2 * N1]!) * f;
        x = (b < 0 ? 0 : Math.min(b, 1)) * n;
        k = x >= n ? n - 1 : x | 0;
        f = x - k;
        i = 6 * N1 + k;
        p0 *= lut[i]! + (lut[i + 1]! - lut[i]!) * f;
        p1 *= lut[i + N1]! + (lut[i + N1 + 1]! - lut[i + N1]!) * f;
        p2 *= lut[i + 2 * N1]! + (lut[i + 2 * N1 + 1]! - lut[i + 2 * N1]!) * f;
        r = Math.min(p0, 1);
        g = Math.min(p1, 1);
        b = Math.min(p2, 1);
      }
      out[o] = (r - mean0) * inv0;
      out[o + 1] = (g - mean1) * inv1;
      out[o + 2] = (b - mean2) * inv2;
    }
  }
}

/** Applies `cfg` to a sample; the same rng state gives the same output. */
export function augment(rng: Rng, s: Sample, cfg: AugmentConfig): Sample {
  const { width, height } = drawResize(rng, s.image.width, s.image.height, cfg);
  if (width !== s.image.width || height !== s.image.height) s = resize(s, width, height);
  return augmentResized(rng, s, cfg);
}
