import { DataError, decodeRaw } from '@bmc/data';
import sharp from 'sharp';
import type { RawPixels } from './pipeline/types.js';

/** Raster formats `bmc detect` picks up when given a folder. */
export const IMAGE_EXTENSIONS = [
  '.png',
  '.jpg',
  '.jpeg',
  '.tif',
  '.tiff',
  '.svs',
  '.webp',
  '.bmp',
  '.gif',
] as const;

/**
 * Decodes a file or bytes to 8-bit RGB with libvips (@bmc/data's decoder: EXIF
 * orientation applied, alpha composited over white). Throws a `DataError`
 * naming the file when the bytes are not a readable image.
 */
export async function decodeToPixels(input: string | Buffer): Promise<RawPixels> {
  const { data, info } = await decodeRaw(input);
  return { data, width: info.width, height: info.height, channels: 3 };
}

/** Thrown when an image's header declares more pixels than allowed. */
export class ImageTooLargeError extends Error {
  override name = 'ImageTooLargeError';
  constructor(
    readonly width: number,
    readonly height: number,
    readonly maxPixels: number,
  ) {
    super(
      `image is ${width}x${height} = ${((width * height) / 1e6).toFixed(1)} megapixels, over the limit of ${(maxPixels / 1e6).toFixed(1)} megapixels`,
    );
  }
}

/**
 * Checks an encoded image's size from its header alone (sharp `metadata()`
 * decodes no pixels), so an image too large to decode safely (a few hundred KB
 * of PNG can declare 16383 x 16383 pixels, 800 MB decoded) is refused before
 * any memory or time is spent on it. Throws `ImageTooLargeError`, or a
 * `DataError` naming `name` when the header is unreadable.
 */
export async function checkImageSize(
  bytes: Buffer,
  maxPixels: number,
  name = 'request body',
): Promise<{ width: number; height: number }> {
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (e) {
    throw new DataError(name, undefined, `cannot decode image: ${(e as Error).message}`);
  }
  if (!width || !height) throw new DataError(name, undefined, 'cannot decode image: no size in its header');
  if (width * height > maxPixels) throw new ImageTooLargeError(width, height, maxPixels);
  return { width, height };
}
