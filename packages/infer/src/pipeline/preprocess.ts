import type { InputNormalization } from '@bmc/export/metadata';
import type { RawPixels } from './types.js';

/** The network input for one image or tile. */
export interface PreparedInput {
  /** `[1, 3, H, W]` float32, normalised, padded right/bottom with zeros (the normalised mean). */
  readonly tensor: Float32Array;
  readonly height: number;
  readonly width: number;
  /** Network pixels per source pixel (1 when not resized). */
  readonly scale: number;
  /** The resized content occupies `[0, contentWidth) x [0, contentHeight)`. */
  readonly contentWidth: number;
  readonly contentHeight: number;
}

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Rounds `x` up to a multiple of `m`. */
export function roundUp(x: number, m: number): number {
  return Math.ceil(x / m) * m;
}

/**
 * Letterbox and normalise straight from 8-bit pixels into NCHW: the crop
 * `region` of `image` is resized (bilinear, half-pixel centres like
 * `align_corners=False` and @bmc/data's resize) by `scale`, normalised as
 * `(p * n.scale - mean) / std`, and padded right and bottom to a multiple of
 * `sizeMultiple` with zeros, which is what padding with the mean colour gives
 * after normalisation (the training pipeline pads that way). One pass, no
 * intermediate float image, so tiles of a huge image cost only their own tensor.
 */
export function prepareInput(
  image: RawPixels,
  normalization: InputNormalization,
  sizeMultiple: number,
  scale = 1,
  region: Region = { x: 0, y: 0, width: image.width, height: image.height },
): PreparedInput {
  const { data, width: iw, channels } = image;
  if (data.length < image.width * image.height * channels) {
    throw new RangeError(`prepareInput: ${data.length} bytes for ${image.width}x${image.height}x${channels}`);
  }
  const cw = Math.max(1, Math.round(region.width * scale));
  const ch = Math.max(1, Math.round(region.height * scale));
  const W = roundUp(cw, sizeMultiple);
  const H = roundUp(ch, sizeMultiple);
  const plane = W * H;
  const out = new Float32Array(3 * plane);
  const ns = normalization.scale;
  const mul = [0, 1, 2].map((c) => ns / normalization.std[c]!);
  const add = [0, 1, 2].map((c) => -normalization.mean[c]! / normalization.std[c]!);
  const m0 = mul[0]!;
  const m1 = mul[1]!;
  const m2 = mul[2]!;
  const a0 = add[0]!;
  const a1 = add[1]!;
  const a2 = add[2]!;
  if (cw === region.width && ch === region.height) {
    for (let y = 0; y < ch; y++) {
      let s = ((region.y + y) * iw + region.x) * channels;
      let o = y * W;
      for (let x = 0; x < cw; x++, s += channels, o++) {
        out[o] = data[s]! * m0 + a0;
        out[plane + o] = data[s + 1]! * m1 + a1;
        out[2 * plane + o] = data[s + 2]! * m2 + a2;
      }
    }
  } else {
    const sx = region.width / cw;
    const sy = region.height / ch;
    const x0s = new Int32Array(cw);
    const x1s = new Int32Array(cw);
    const fxs = new Float32Array(cw);
    for (let x = 0; x < cw; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), region.width - 1);
      const x0 = Math.floor(fx);
      x0s[x] = (region.x + x0) * channels;
      x1s[x] = (region.x + Math.min(x0 + 1, region.width - 1)) * channels;
      fxs[x] = fx - x0;
    }
    for (let y = 0; y < ch; y++) {
      const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), region.height - 1);
      const y0 = Math.floor(fy);
      const y1 = Math.min(y0 + 1, region.height - 1);
      const wy = fy - y0;
      const r0 = (region.y + y0) * iw * channels;
      const r1 = (region.y + y1) * iw * channels;
      let o = y * W;
      for (let x = 0; x < cw; x++, o++) {
        const a = x0s[x]!;
        const b = x1s[x]!;
        const wx = fxs[x]!;
        for (let c = 0; c < 3; c++) {
          const top = data[r0 + a + c]! + (data[r0 + b + c]! - data[r0 + a + c]!) * wx;
          const bot = data[r1 + a + c]! + (data[r1 + b + c]! - data[r1 + a + c]!) * wx;
          out[c * plane + o] = (top + (bot - top) * wy) * mul[c]! + add[c]!;
        }
      }
    }
  }
  return { tensor: out, height: H, width: W, scale, contentWidth: cw, contentHeight: ch };
}
