import { decodeRaw } from '@bmc/data';
import type { RawPixels } from './pipeline/types.js';

/** Raster formats `bmc detect` picks up when given a folder. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp', '.bmp', '.gif'] as const;

/**
 * Decodes a file or bytes to 8-bit RGB with libvips (@bmc/data's decoder: EXIF
 * orientation applied, alpha composited over white). Throws a `DataError`
 * naming the file when the bytes are not a readable image.
 */
export async function decodeToPixels(input: string | Buffer): Promise<RawPixels> {
  const { data, info } = await decodeRaw(input);
  return { data, width: info.width, height: info.height, channels: 3 };
}
