import type { ImageHWC } from './image-io.js';
import type { Rng } from './rng.js';
import { type Sample, withBoxes } from './sample.js';

/** Mirror left-right; `x -> W - x`, so box `[x1, x2]` becomes `[W - x2, W - x1]`. */
export function hflip(s: Sample): Sample {
  const { data, width: w, height: h } = s.image;
  const out = new Float32Array(data.length);
  for (let y = 0; y < h; y++) {
    const row = y * w * 3;
    for (let x = 0; x < w; x++) {
      const src = row + x * 3;
      const dst = row + (w - 1 - x) * 3;
      out[dst] = data[src]!;
      out[dst + 1] = data[src + 1]!;
      out[dst + 2] = data[src + 2]!;
    }
  }
  const b = Float32Array.from(s.boxes);
  for (let i = 0; i < b.length; i += 4) {
    const x1 = b[i]!;
    b[i] = w - b[i + 2]!;
    b[i + 2] = w - x1;
  }
  return { ...s, image: { data: out, width: w, height: h }, boxes: b };
}

/** Mirror top-bottom. */
export function vflip(s: Sample): Sample {
  const { data, width: w, height: h } = s.image;
  const out = new Float32Array(data.length);
  const rowLen = w * 3;
  for (let y = 0; y < h; y++) out.set(data.subarray(y * rowLen, (y + 1) * rowLen), (h - 1 - y) * rowLen);
  const b = Float32Array.from(s.boxes);
  for (let i = 0; i < b.length; i += 4) {
    const y1 = b[i + 1]!;
    b[i + 1] = h - b[i + 3]!;
    b[i + 3] = h - y1;
  }
  return { ...s, image: { data: out, width: w, height: h }, boxes: b };
}

/** Bilinear resize with half-pixel centres (as `align_corners=False`); box coordinates scale per axis. */
export function resizeImage(img: ImageHWC, width: number, height: number): ImageHWC {
  const { data, width: w, height: h } = img;
  if (width === w && height === h) return { data: Float32Array.from(data), width, height };
  const out = new Float32Array(width * height * 3);
  const sx = w / width;
  const sy = h / height;
  const x0s = new Int32Array(width);
  const x1s = new Int32Array(width);
  const fxs = new Float32Array(width);
  for (let x = 0; x < width; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
    x0s[x] = Math.floor(fx);
    x1s[x] = Math.min(x0s[x]! + 1, w - 1);
    fxs[x] = fx - x0s[x]!;
  }
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const wy = fy - y0;
    const r0 = y0 * w * 3;
    const r1 = y1 * w * 3;
    let o = y * width * 3;
    for (let x = 0; x < width; x++) {
      const a = x0s[x]! * 3;
      const b = x1s[x]! * 3;
      const wx = fxs[x]!;
      for (let c = 0; c < 3; c++) {
        const top = data[r0 + a + c]! + (data[r0 + b + c]! - data[r0 + a + c]!) * wx;
        const bot = data[r1 + a + c]! + (data[r1 + b + c]! - data[r1 + a + c]!) * wx;
        out[o++] = top + (bot - top) * wy;
      }
    }
  }
  return { data: out, width, height };
}

export function resize(s: Sample, width: number, height: number): Sample {
  const sx = width / s.image.width;
  const sy = height / s.image.height;
  const b = Float32Array.from(s.boxes);
  for (let i = 0; i < b.length; i += 4) {
    b[i]! *= sx;
    b[i + 1]! *= sy;
    b[i + 2]! *= sx;
    b[i + 3]! *= sy;
  }
  return { ...s, image: resizeImage(s.image, width, height), boxes: b };
}

/** Resize by a factor drawn uniformly from `[lo, hi]` (same factor on both axes). */
export function randomScale(rng: Rng, s: Sample, range: readonly [number, number]): Sample {
  const f = rng.uniform(range[0], range[1]);
  return resize(s, Math.max(1, Math.round(s.image.width * f)), Math.max(1, Math.round(s.image.height * f)));
}

/**
 * Crops `[x, y, x + width, y + height]` (integers). A box is kept, clipped, when at least
 * `minVisible` of its area stays inside; boxes cut more than that are dropped, since a sliver
 * of a cell is not something the detector should be asked to find.
 */
export function crop(
  s: Sample,
  x: number,
  y: number,
  width: number,
  height: number,
  minVisible = 0.5,
): Sample {
  const { data, width: w } = s.image;
  const out = new Float32Array(width * height * 3);
  for (let r = 0; r < height; r++) {
    const src = ((y + r) * w + x) * 3;
    out.set(data.subarray(src, src + width * 3), r * width * 3);
  }
  const { boxes, labels } = cropBoxes(s.boxes, s.labels, x, y, width, height, minVisible);
  return withBoxes(s, { data: out, width, height }, boxes, labels);
}

/** The box half of {@link crop}: shift into the crop, clip, apply the visible-area rule. */
export function cropBoxes(
  src: Float32Array,
  srcLabels: Int32Array,
  x: number,
  y: number,
  width: number,
  height: number,
  minVisible: number,
): { boxes: number[]; labels: number[] } {
  const boxes: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < srcLabels.length; i++) {
    const bx1 = src[4 * i]!;
    const by1 = src[4 * i + 1]!;
    const bx2 = src[4 * i + 2]!;
    const by2 = src[4 * i + 3]!;
    const area = (bx2 - bx1) * (by2 - by1);
    const cx1 = Math.max(bx1, x) - x;
    const cy1 = Math.max(by1, y) - y;
    const cx2 = Math.min(bx2, x + width) - x;
    const cy2 = Math.min(by2, y + height) - y;
    if (cx2 <= cx1 || cy2 <= cy1) continue;
    const visible = (cx2 - cx1) * (cy2 - cy1);
    if (area > 0 && visible / area < minVisible) continue;
    boxes.push(cx1, cy1, cx2, cy2);
    labels.push(srcLabels[i]!);
  }
  return { boxes, labels };
}

/** A crop of at most `width` x `height` at a uniformly random position (see {@link crop}). */
export function randomCrop(
  rng: Rng,
  s: Sample,
  opts: { width: number; height: number; minVisible?: number },
): Sample {
  const cw = Math.min(opts.width, s.image.width);
  const ch = Math.min(opts.height, s.image.height);
  const x = rng.int(0, s.image.width - cw);
  const y = rng.int(0, s.image.height - ch);
  return crop(s, x, y, cw, ch, opts.minVisible ?? 0.5);
}

/** ImageNet RGB mean and std (torchvision's normalisation of pretrained backbones). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export interface LetterboxInfo {
  /** Factor applied to the input (boxes and image). */
  readonly scale: number;
  /** Content occupies `[0, contentWidth) x [0, contentHeight)`; the rest is padding. */
  readonly contentWidth: number;
  readonly contentHeight: number;
}

/**
 * Pads right and bottom to `width` x `height` with `fill` (default the ImageNet mean, which
 * becomes 0 after {@link normalizeImageNet}). Padding at the far sides leaves box coordinates
 * unchanged, which keeps the mapping back to the input a pure scale.
 */
export function pad(
  s: Sample,
  width: number,
  height: number,
  fill: readonly number[] = IMAGENET_MEAN,
): Sample {
  const { width: cw, height: ch, data } = s.image;
  if (cw > width || ch > height)
    throw new RangeError(`pad: ${cw}x${ch} image is larger than ${width}x${height}`);
  const out = new Float32Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    out[3 * i] = fill[0]!;
    out[3 * i + 1] = fill[1]!;
    out[3 * i + 2] = fill[2]!;
  }
  for (let y = 0; y < ch; y++) out.set(data.subarray(y * cw * 3, (y + 1) * cw * 3), y * width * 3);
  return { ...s, image: { data: out, width, height } };
}

/** Rounds `x` up to a multiple of `m`. */
export function roundUp(x: number, m: number): number {
  return Math.ceil(x / m) * m;
}

/**
 * Resizes so the longer side is `size`, keeping the aspect ratio, then pads to a square of
 * `size` rounded up to a multiple of `multiple` (default 32, the coarsest network stride).
 * Without `size`, only pads each side to the next multiple.
 */
export function letterbox(
  s: Sample,
  opts: { size?: number; multiple?: number; fill?: readonly number[] } = {},
): { sample: Sample; info: LetterboxInfo } {
  const m = opts.multiple ?? 32;
  let scale = 1;
  if (opts.size !== undefined) {
    scale = opts.size / Math.max(s.image.width, s.image.height);
    const w = Math.max(1, Math.round(s.image.width * scale));
    const h = Math.max(1, Math.round(s.image.height * scale));
    if (w !== s.image.width || h !== s.image.height) s = resize(s, w, h);
  }
  const cw = s.image.width;
  const ch = s.image.height;
  const W = roundUp(opts.size ?? cw, m);
  const H = roundUp(opts.size ?? ch, m);
  return { sample: pad(s, W, H, opts.fill), info: { scale, contentWidth: cw, contentHeight: ch } };
}

/** `(x - mean) / std` per channel, into a new array (HWC). */
export function normalizeImageNet(img: ImageHWC, mean = IMAGENET_MEAN, std = IMAGENET_STD): ImageHWC {
  const out = new Float32Array(img.data.length);
  const m0 = mean[0];
  const m1 = mean[1];
  const m2 = mean[2];
  const i0 = 1 / std[0];
  const i1 = 1 / std[1];
  const i2 = 1 / std[2];
  const d = img.data;
  for (let i = 0; i < d.length; i += 3) {
    out[i] = (d[i]! - m0) * i0;
    out[i + 1] = (d[i + 1]! - m1) * i1;
    out[i + 2] = (d[i + 2]! - m2) * i2;
  }
  return { data: out, width: img.width, height: img.height };
}
