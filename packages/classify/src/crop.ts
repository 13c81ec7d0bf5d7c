/**
 * The crop rule: how a cell's image is cut from a smear given its box. One function, used by
 * training-data preparation and by inference (Node and browser), so a classifier always sees
 * crops cut the way it was trained on. No I/O, no TensorFlow.js.
 */

/** An RGB image, `[H, W, 3]` row-major float32 in `[0, 1]` (the same layout as `@bmc/data`'s `ImageHWC`). */
export interface RgbImage {
  readonly data: Float32Array;
  readonly width: number;
  readonly height: number;
}

export interface CropRule {
  /** Output side in pixels (the classifier's input is `cropSize x cropSize`). */
  readonly cropSize: number;
  /**
   * Context around the box on each side, as a fraction of the box's longer side: the square's
   * side is `max(w, h) * (1 + 2 * margin)`. 0 = the square just holds the box.
   */
  readonly margin: number;
}

/** Written into exported models' metadata so every consumer cuts crops the same way. */
export const CROP_RULE_DESCRIPTION =
  'square centred on the box centre, side = max(w, h) * (1 + 2 * margin) source pixels, resampled bilinearly (pixel centres) to cropSize x cropSize; source pixels outside the image repeat the nearest border pixel';

/** The square window (source pixels, may extend past the image) a box is cut from. */
export function cropWindow(
  box: readonly [number, number, number, number],
  margin: number,
): { x0: number; y0: number; side: number } {
  const [x1, y1, x2, y2] = box;
  const w = Math.max(x2 - x1, 1);
  const h = Math.max(y2 - y1, 1);
  const side = Math.max(w, h) * (1 + 2 * margin);
  return { x0: (x1 + x2) / 2 - side / 2, y0: (y1 + y2) / 2 - side / 2, side };
}

/**
 * Cuts the crop of one box `[x1, y1, x2, y2]` (pixels) out of `image`. A box at the image border
 * is still centred: the part of the window outside the image repeats the border pixels (clamped
 * coordinates) rather than shifting the cell off-centre or padding with a colour the classifier
 * never saw in training. Bilinear resampling over pixel centres, as `align_corners=False`.
 * When the window is much larger than the output (downscaling by more than 2), neighbouring
 * source pixels are averaged over the sample's footprint first (box filter) to avoid aliasing.
 */
export function cropCell(
  image: RgbImage,
  box: readonly [number, number, number, number],
  rule: CropRule,
): RgbImage {
  const { cropSize } = rule;
  if (!Number.isInteger(cropSize) || cropSize < 1)
    throw new RangeError(`cropCell: cropSize must be an integer >= 1, got ${cropSize}`);
  if (!(rule.margin >= 0)) throw new RangeError(`cropCell: margin must be >= 0, got ${rule.margin}`);
  if (!box.every(Number.isFinite))
    throw new RangeError(`cropCell: box has a non-finite coordinate: [${box.join(', ')}]`);
  const { width: W, height: H, data } = image;
  const { x0, y0, side } = cropWindow(box, rule.margin);
  const scale = side / cropSize;
  // Footprint of one output pixel in source pixels: sample a k x k grid inside it (k=1 when upscaling).
  const k = Math.max(1, Math.min(8, Math.round(scale / 2)));
  const out = new Float32Array(cropSize * cropSize * 3);
  const px = new Float32Array(3);
  const sample = (sx: number, sy: number) => {
    const x = Math.min(Math.max(sx, 0), W - 1);
    const y = Math.min(Math.max(sy, 0), H - 1);
    const xa = Math.floor(x);
    const ya = Math.floor(y);
    const xb = Math.min(xa + 1, W - 1);
    const yb = Math.min(ya + 1, H - 1);
    const fx = x - xa;
    const fy = y - ya;
    for (let c = 0; c < 3; c++) {
      const a = data[(ya * W + xa) * 3 + c]! * (1 - fx) + data[(ya * W + xb) * 3 + c]! * fx;
      const b = data[(yb * W + xa) * 3 + c]! * (1 - fx) + data[(yb * W + xb) * 3 + c]! * fx;
      px[c]! += a * (1 - fy) + b * fy;
    }
  };
  for (let oy = 0; oy < cropSize; oy++) {
    for (let ox = 0; ox < cropSize; ox++) {
      px.fill(0);
      for (let j = 0; j < k; j++) {
        for (let i = 0; i < k; i++) {
          sample(x0 + (ox + (i + 0.5) / k) * scale - 0.5, y0 + (oy + (j + 0.5) / k) * scale - 0.5);
        }
      }
      const o = (oy * cropSize + ox) * 3;
      const n = 1 / (k * k);
      out[o] = px[0]! * n;
      out[o + 1] = px[1]! * n;
      out[o + 2] = px[2]! * n;
    }
  }
  return { data: out, width: cropSize, height: cropSize };
}

/** ImageNet mean / std, the normalisation the classifier's input expects (recorded in the ONNX metadata). */
export const CLASSIFIER_NORMALIZATION = {
  mean: [0.485, 0.456, 0.406] as const,
  std: [0.229, 0.224, 0.225] as const,
};

/** Normalises crops into one NHWC float32 batch `[N, S, S, 3]` (what the classifier takes). */
export function normalizeCrops(crops: readonly RgbImage[]): Float32Array {
  const first = crops[0];
  if (!first) return new Float32Array(0);
  const n = first.width * first.height * 3;
  const out = new Float32Array(crops.length * n);
  const { mean, std } = CLASSIFIER_NORMALIZATION;
  crops.forEach((c, b) => {
    if (c.width * c.height * 3 !== n) throw new RangeError('normalizeCrops: crops differ in size');
    for (let i = 0; i < n; i++) out[b * n + i] = (c.data[i]! - mean[i % 3]!) / std[i % 3]!;
  });
  return out;
}
