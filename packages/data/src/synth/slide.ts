import { rename, rm } from 'node:fs/promises';
import sharp from 'sharp';
import { toBytes } from '../image-io.js';
import { generateSmear, type SmearOptions } from './smear.js';

export interface SmearSlideOptions extends Omit<SmearOptions, 'width' | 'height'> {
  readonly seed: number;
  /** Slide size in pixels (level 0). */
  readonly width: number;
  readonly height: number;
  /** Top-left corner of each field on the slide; fields must not overlap each other or the edge. */
  readonly fields: readonly (readonly [number, number])[];
  /** Side of a field, glass margin included. Default 320. */
  readonly fieldSize?: number;
  /** Glass around each field's smear, in pixels. Default 56. */
  readonly margin?: number;
  /** Glass colour. Default a light grey-white, as bright-field scanners see empty glass. */
  readonly glass?: readonly [number, number, number];
  /** TIFF tile compression: 'deflate' (lossless, default) or 'jpeg' (as Aperio SVS). */
  readonly compression?: 'deflate' | 'jpeg';
}

export interface SlideField {
  /** Top-left corner on the slide. */
  readonly x: number;
  readonly y: number;
  /** The field's RGB pixels (`size` x `size`), glass margin included, as placed on the slide. */
  readonly rgb: Uint8Array;
  readonly size: number;
  /** `[N, 4]` xyxy boxes of the field's cells, in field pixels. */
  readonly boxes: Float32Array;
}

/**
 * Writes a synthetic whole slide: `width` x `height` of glass with smear fields (from
 * `generateSmear`, each surrounded by a glass margin) at the given corners, as a tiled pyramidal
 * BigTIFF (512 px tiles, levels halving down to one tile) as libvips writes it, the layout
 * scanners' TIFF/SVS files share. Written to a temporary name and renamed. Returns the fields.
 */
export async function writeSmearSlide(file: string, opts: SmearSlideOptions): Promise<SlideField[]> {
  const size = opts.fieldSize ?? 320;
  const margin = opts.margin ?? 56;
  const glass = opts.glass ?? [242, 240, 241];
  const inner = size - 2 * margin;
  if (!(inner > 0))
    throw new RangeError(`writeSmearSlide: field ${size} px leaves no smear inside a ${margin} px margin`);
  const fields = opts.fields.map(([x, y], k): SlideField => {
    if (x < 0 || y < 0 || x + size > opts.width || y + size > opts.height)
      throw new RangeError(
        `writeSmearSlide: field ${k} at ${x},${y} leaves the ${opts.width}x${opts.height} slide`,
      );
    const s = generateSmear(opts.seed, k, { ...opts, width: inner, height: inner, debugMasks: false });
    const smear = toBytes(s.image);
    const rgb = new Uint8Array(size * size * 3);
    for (let i = 0; i < size * size; i++) rgb.set(glass, i * 3);
    for (let r = 0; r < inner; r++)
      rgb.set(smear.subarray(r * inner * 3, (r + 1) * inner * 3), ((r + margin) * size + margin) * 3);
    const boxes = s.boxes.map((v) => v + margin);
    return { x, y, rgb, size, boxes };
  });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await sharp({
      create: {
        width: opts.width,
        height: opts.height,
        channels: 3,
        background: { r: glass[0], g: glass[1], b: glass[2] },
      },
      limitInputPixels: false,
    })
      .composite(
        fields.map((f) => ({
          input: Buffer.from(f.rgb.buffer, f.rgb.byteOffset, f.rgb.byteLength),
          raw: { width: size, height: size, channels: 3 as const },
          left: f.x,
          top: f.y,
        })),
      )
      .tiff({
        tile: true,
        tileWidth: 512,
        tileHeight: 512,
        pyramid: true,
        bigtiff: true,
        compression: opts.compression ?? 'deflate',
        quality: 90,
      })
      .toFile(tmp);
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  return fields;
}
