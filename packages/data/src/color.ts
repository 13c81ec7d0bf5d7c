import type { ImageHWC } from './image-io.js';
import type { Rng } from './rng.js';

export interface ColorJitterOptions {
  /** Brightness factor drawn from `[1 - b, 1 + b]`. */
  readonly brightness?: number;
  /** Contrast factor drawn from `[1 - c, 1 + c]` (blend with the mean grey level). */
  readonly contrast?: number;
  /** Saturation factor drawn from `[1 - s, 1 + s]` (blend with the grey image). */
  readonly saturation?: number;
  /** Hue rotation drawn from `[-h, h]` turns (0.5 = 180 degrees), applied in YIQ. */
  readonly hue?: number;
}

/** Colour jitter factors drawn for one image. */
export interface ColorJitterDraw {
  readonly brightness: number;
  readonly contrast: number;
  readonly saturation: number;
  /** Radians. */
  readonly hue: number;
}

export function drawColorJitter(rng: Rng, o: ColorJitterOptions): ColorJitterDraw {
  return {
    brightness: 1 + rng.uniform(-(o.brightness ?? 0), o.brightness ?? 0),
    contrast: 1 + rng.uniform(-(o.contrast ?? 0), o.contrast ?? 0),
    saturation: 1 + rng.uniform(-(o.saturation ?? 0), o.saturation ?? 0),
    hue: rng.uniform(-(o.hue ?? 0), o.hue ?? 0) * 2 * Math.PI,
  };
}

/** Mean Rec. 601 luma of an image region (contrast blends towards it). */
export function meanLuma(d: Float32Array, start = 0, end = d.length): number {
  let mean = 0;
  for (let i = start; i < end; i += 3) mean += 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!;
  return mean / ((end - start) / 3);
}

/** The jitter as `rgb' = M @ rgb + off` for an image of mean luma `meanY`. */
export function colorJitterMatrix(j: ColorJitterDraw, meanY: number): { M: number[][]; off: number[] } {
  const { brightness: b, contrast: c, saturation: s, hue: h } = j;
  // Saturation blends towards luma (Rec. 601), hue rotates the chroma plane of YIQ.
  const lum = [0.299, 0.587, 0.114];
  const sat = [0, 1, 2].map((r) => [0, 1, 2].map((k) => (1 - s) * lum[k]! + (r === k ? s : 0)));
  const toYiq = [
    [0.299, 0.587, 0.114],
    [0.596, -0.274, -0.322],
    [0.211, -0.523, 0.312],
  ];
  const fromYiq = invert3(toYiq);
  const cos = Math.cos(h);
  const sin = Math.sin(h);
  const rot = [
    [1, 0, 0],
    [0, cos, -sin],
    [0, sin, cos],
  ];
  const hueM = mul(fromYiq, mul(rot, toYiq));
  const M = mul(hueM, sat).map((row) => row.map((x) => x * b * c));
  const o = (1 - c) * meanY * b;
  return { M, off: [o, o, o] };
}

/** Brightness, contrast, saturation and hue jitter, as one 3x3 colour matrix plus offset per image. */
export function colorJitter(rng: Rng, img: ImageHWC, o: ColorJitterOptions): ImageHWC {
  const { M, off } = colorJitterMatrix(drawColorJitter(rng, o), meanLuma(img.data));
  return affine(img, M, off);
}

function mul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0]!.map((_, j) => row.reduce((acc, x, k) => acc + x * b[k]![j]!, 0)));
}

/** `out = M @ rgb + off`, clipped to `[0, 1]`. */
export function affine(img: ImageHWC, M: number[][], off: readonly number[]): ImageHWC {
  const d = img.data;
  const out = new Float32Array(d.length);
  const [a, b, c] = M[0]!;
  const [e, f, g] = M[1]!;
  const [h, k, l] = M[2]!;
  const [o0, o1, o2] = off;
  for (let i = 0; i < d.length; i += 3) {
    const r = d[i]!;
    const gr = d[i + 1]!;
    const bl = d[i + 2]!;
    out[i] = clamp01(a! * r + b! * gr + c! * bl + o0!);
    out[i + 1] = clamp01(e! * r + f! * gr + g! * bl + o1!);
    out[i + 2] = clamp01(h! * r + k! * gr + l! * bl + o2!);
  }
  return { data: out, width: img.width, height: img.height };
}

function clamp01(x: number): number {
  return x < 0 ? 0 : Math.min(x, 1);
}

/**
 * Stain vectors of haematoxylin, eosin and DAB as rows (Ruifrok & Johnston, the matrix
 * scikit-image's `rgb2hed` uses). Optical density `OD = -ln(rgb)` is `hed @ HED_FROM_STAINS`.
 */
export const RGB_FROM_HED = [
  [0.65, 0.7, 0.29],
  [0.07, 0.99, 0.11],
  [0.27, 0.57, 0.78],
] as const;

function invert3(m: readonly (readonly number[])[]): number[][] {
  const [a, b, c] = m[0]!;
  const [d, e, f] = m[1]!;
  const [g, h, i] = m[2]!;
  const A = e! * i! - f! * h!;
  const B = -(d! * i! - f! * g!);
  const C = d! * h! - e! * g!;
  const det = a! * A + b! * B + c! * C;
  return [
    [A / det, -(b! * i! - c! * h!) / det, (b! * f! - c! * e!) / det],
    [B / det, (a! * i! - c! * g!) / det, -(a! * f! - c! * d!) / det],
    [C / det, -(a! * h! - b! * g!) / det, (a! * e! - b! * d!) / det],
  ];
}

export const HED_FROM_RGB = invert3(RGB_FROM_HED);

/** Smallest intensity taken into log space (scikit-image uses 1e-6 too). */
const EPS = 1e-6;

/** Bins of the per-image power tables in {@link hedTransform}. */
export const LUT_BINS = 4096;

/**
 * Scales and shifts the stain concentrations: `hed' = alpha * hed + beta` per stain, with
 * `hed = OD @ HED_FROM_RGB` and `OD = -ln(max(rgb, 1e-6))`. Linear in OD space, so it folds into
 * one 3x3 matrix `T`, and in intensity space each output channel is a product of powers:
 * `out_j = exp(-off_j) * prod_c rgb_c ^ T[c][j]`. The nine power curves are tabulated per call
 * and interpolated linearly (1.5 M `log`/`exp` calls at 512 x 512 were most of the
 * augmentation time). `alpha = 1, beta = 0` gives `T = I`, where the tables are exactly `x` and
 * `1`, so the identity is exact up to float rounding.
 */
export function hedTransform(img: ImageHWC, alpha: readonly number[], beta: readonly number[]): ImageHWC {
  const lut = hedLut(alpha, beta);
  const d = img.data;
  const out = new Float32Array(d.length);
  for (let i = 0; i < d.length; i += 3) {
    applyHedLut(lut, d[i]!, d[i + 1]!, d[i + 2]!, out, i);
  }
  return { data: out, width: img.width, height: img.height };
}

/** Tabulated HED transform (see {@link hedTransform}). */
export interface HedLut {
  /** `lut[(c * 3 + j) * (LUT_BINS + 1) + k] = max(k / LUT_BINS, 1e-6) ^ T[c][j]` */
  readonly lut: Float32Array;
  /** `exp(-off_j)` */
  readonly scale: readonly [number, number, number];
}

let lnTable: Float64Array | undefined;
function logTable(): Float64Array {
  if (!lnTable) {
    lnTable = new Float64Array(LUT_BINS + 1);
    for (let k = 0; k <= LUT_BINS; k++) lnTable[k] = Math.log(Math.max(k / LUT_BINS, EPS));
  }
  return lnTable;
}

export function hedLut(alpha: readonly number[], beta: readonly number[]): HedLut {
  const { T, off } = hedMatrix(alpha, beta);
  const n = LUT_BINS;
  const lut = new Float32Array(9 * (n + 1));
  const ln = logTable();
  for (let c = 0; c < 3; c++) {
    for (let j = 0; j < 3; j++) {
      const t = T[c]![j]!;
      const base = (c * 3 + j) * (n + 1);
      // Exact at t = 1 (x itself) and t = 0 (1), so the identity transform stays exact.
      if (t === 1) for (let k = 0; k <= n; k++) lut[base + k] = Math.max(k / n, EPS);
      else if (Math.abs(t) < 1e-12) lut.fill(1, base, base + n + 1);
      else for (let k = 0; k <= n; k++) lut[base + k] = Math.exp(t * ln[k]!);
    }
  }
  return { lut, scale: [Math.exp(-off[0]!), Math.exp(-off[1]!), Math.exp(-off[2]!)] };
}

/** Writes the transformed pixel `(r, g, b)` to `out[o..o+2]`. */
export function applyHedLut(h: HedLut, r: number, g: number, b: number, out: Float32Array, o: number): void {
  const n = LUT_BINS;
  const N1 = n + 1;
  const lut = h.lut;
  let p0 = h.scale[0];
  let p1 = h.scale[1];
  let p2 = h.scale[2];
  for (let c = 0; c < 3; c++) {
    const v = c === 0 ? r : c === 1 ? g : b;
    const x = (v < 0 ? 0 : Math.min(v, 1)) * n;
    const k = x >= n ? n - 1 : Math.floor(x);
    const f = x - k;
    const i = c * 3 * N1 + k;
    p0 *= lut[i]! + (lut[i + 1]! - lut[i]!) * f;
    p1 *= lut[i + N1]! + (lut[i + N1 + 1]! - lut[i + N1]!) * f;
    p2 *= lut[i + 2 * N1]! + (lut[i + 2 * N1 + 1]! - lut[i + 2 * N1]!) * f;
  }
  out[o] = clamp01(p0);
  out[o + 1] = clamp01(p1);
  out[o + 2] = clamp01(p2);
}

/**
 * The stain jitter as an affine map of optical density (row vector): `OD' = OD @ T + off`, with
 * `T = HED_FROM_RGB diag(alpha) RGB_FROM_HED` and `off = beta @ RGB_FROM_HED`.
 */
export function hedMatrix(
  alpha: readonly number[],
  beta: readonly number[],
): { T: number[][]; off: number[] } {
  const T = [0, 1, 2].map((r) =>
    [0, 1, 2].map((c) =>
      [0, 1, 2].reduce((s, k) => s + HED_FROM_RGB[r]![k]! * alpha[k]! * RGB_FROM_HED[k]![c]!, 0),
    ),
  );
  const off = [0, 1, 2].map((c) => [0, 1, 2].reduce((s, k) => s + beta[k]! * RGB_FROM_HED[k]![c]!, 0));
  return { T, off };
}

export interface HedJitterOptions {
  /** Stain scale drawn from `[1 - sigma, 1 + sigma]` per stain (Tellez et al. use 0.05). */
  readonly sigma: number;
  /** Stain shift drawn from `[-bias, bias]` per stain (OD units). */
  readonly bias: number;
}

/** HED stain augmentation: the usual remedy for stain colour differences between smear batches. */
export function hedJitter(rng: Rng, img: ImageHWC, o: HedJitterOptions): ImageHWC {
  const { alpha, beta } = drawHedJitter(rng, o);
  return hedTransform(img, alpha, beta);
}

export function drawHedJitter(rng: Rng, o: HedJitterOptions): { alpha: number[]; beta: number[] } {
  const alpha = [0, 1, 2].map(() => 1 + rng.uniform(-o.sigma, o.sigma));
  const beta = [0, 1, 2].map(() => rng.uniform(-o.bias, o.bias));
  return { alpha, beta };
}

/** Separable Gaussian blur (edges clamped). */
export function gaussianBlur(img: ImageHWC, sigma: number): ImageHWC {
  if (sigma <= 0) return { ...img, data: Float32Array.from(img.data) };
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  const { width: w, height: h, data } = img;
  const tmp = new Float32Array(data.length);
  const out = new Float32Array(data.length);
  blurPass(data, tmp, w, h, k, r, true);
  blurPass(tmp, out, w, h, k, r, false);
  return { data: out, width: w, height: h };
}

let normalTable: Float32Array | undefined;

/** 65536 standard normal quantiles: drawing noise by table lookup is ~10x cheaper than Box-Muller per pixel. */
function normals(): Float32Array {
  if (normalTable) return normalTable;
  const t = new Float32Array(65536);
  for (let i = 0; i < t.length; i++) t[i] = inverseNormal((i + 0.5) / t.length);
  normalTable = t;
  return t;
}

/** Acklam's rational approximation of the standard normal quantile (|error| < 1.2e-9). */
function inverseNormal(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo || p > 1 - lo) {
    const q = Math.sqrt(-2 * Math.log(p < lo ? p : 1 - p));
    const x =
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
    return p < lo ? x : -x;
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

/** Adds N(0, sigma^2) noise per value (quantised to 65536 levels), clipped to `[0, 1]`. */
export function gaussianNoise(rng: Rng, img: ImageHWC, sigma: number): ImageHWC {
  const out = Float32Array.from(img.data);
  addGaussianNoise(rng, out, sigma);
  return { data: out, width: img.width, height: img.height };
}

/** {@link gaussianNoise} in place. */
export function addGaussianNoise(rng: Rng, data: Float32Array, sigma: number): void {
  const t = normals();
  for (let i = 0; i < data.length; i++) data[i] = clamp01(data[i]! + sigma * t[rng.nextUint32() >>> 16]!);
}

/** One direction of a separable blur over RGB HWC floats, edges clamped. */
function blurPass(
  src: Float32Array,
  dst: Float32Array,
  w: number,
  h: number,
  k: Float32Array,
  r: number,
  horizontal: boolean,
): void {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let a = 0;
      let b = 0;
      let c = 0;
      for (let j = -r; j <= r; j++) {
        let p: number;
        if (horizontal) {
          const xx = x + j < 0 ? 0 : x + j >= w ? w - 1 : x + j;
          p = (y * w + xx) * 3;
        } else {
          const yy = y + j < 0 ? 0 : y + j >= h ? h - 1 : y + j;
          p = (yy * w + x) * 3;
        }
        const kv = k[j + r]!;
        a += src[p]! * kv;
        b += src[p + 1]! * kv;
        c += src[p + 2]! * kv;
      }
      const o = (y * w + x) * 3;
      dst[o] = a;
      dst[o + 1] = b;
      dst[o + 2] = c;
    }
  }
}
