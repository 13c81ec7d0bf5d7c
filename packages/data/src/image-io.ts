import { writeFileAtomic as writeFileAtomicSync } from '@bmc/core/node';
import sharp from 'sharp';
import { DataError } from './errors.js';

/** An RGB image, `[H, W, 3]` row-major float32 in `[0, 1]`. */
export interface ImageHWC {
  readonly data: Float32Array;
  readonly width: number;
  readonly height: number;
}

export interface DecodeOptions {
  /**
   * Resize (bilinear, no aspect change unless both are given) during decoding, in libvips:
   * much cheaper than decoding at full size and resizing floats.
   */
  readonly resize?: { width: number; height: number };
}

/**
 * Decodes JPEG / PNG / TIFF / WebP (anything libvips reads) to float RGB. EXIF orientation is
 * applied, grey is expanded to RGB and alpha is dropped (composited over white, as a smear
 * photographed on a light background would be). Errors name the file.
 */
export async function decodeImage(input: string | Buffer, opts: DecodeOptions = {}): Promise<ImageHWC> {
  const { data, info } = await decodeRaw(input, opts);
  const out = new Float32Array(data.length);
  const s = 1 / 255;
  for (let i = 0; i < data.length; i++) out[i] = data[i]! * s;
  return { data: out, width: info.width, height: info.height };
}

/** As {@link decodeImage} but returns the 8-bit bytes `[H, W, 3]`. */
export async function decodeRaw(
  input: string | Buffer,
  opts: DecodeOptions = {},
): Promise<{ data: Buffer; info: { width: number; height: number } }> {
  try {
    let p = sharp(input, { failOn: 'error' }).rotate();
    if (opts.resize) p = p.resize(opts.resize.width, opts.resize.height, { fit: 'fill', kernel: 'linear' });
    const { data, info } = await p
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return { data, info: { width: info.width, height: info.height } };
  } catch (e) {
    throw new DataError(nameOf(input), undefined, `cannot decode image: ${reason(e)}`);
  }
}

/** Width and height after EXIF orientation, read from the header only. */
export async function imageSize(file: string): Promise<{ width: number; height: number }> {
  try {
    const m = await sharp(file).metadata();
    if (!m.width || !m.height) throw new Error('no size in header');
    const swap = (m.orientation ?? 1) >= 5;
    return swap ? { width: m.height, height: m.width } : { width: m.width, height: m.height };
  } catch (e) {
    throw new DataError(file, undefined, `cannot read image: ${reason(e)}`);
  }
}

/** Converts float `[0, 1]` HWC RGB to 8-bit bytes (rounded, clamped). */
export function toBytes(image: ImageHWC): Uint8Array {
  const out = new Uint8Array(image.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = Math.round(image.data[i]! * 255);
    out[i] = v < 0 ? 0 : Math.min(v, 255);
  }
  return out;
}

/** Encodes to PNG (deterministic bytes for identical pixels). */
export async function encodePng(image: ImageHWC): Promise<Buffer> {
  return sharp(toBytes(image), { raw: { width: image.width, height: image.height, channels: 3 } })
    .png({ compressionLevel: 6, adaptiveFiltering: false })
    .toBuffer();
}

/**
 * Writes `data` to `file` through a temporary name, fsync and a rename, so readers never see half a
 * file: @bmc/core/node's `writeFileAtomic` (the one copy), kept async here for existing callers.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  writeFileAtomicSync(file, data);
}

function nameOf(input: string | Buffer): string {
  return typeof input === 'string' ? input : '<buffer>';
}

/** libvips messages are multi-line with internal detail; the first line says what is wrong. */
export function reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.trim();
}
