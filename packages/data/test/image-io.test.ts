import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { DataError, decodeImage, imageSize } from '../src/index.js';

// A 3 x 2 RGB image with distinct pixels, so orientation and channel order are checkable.
const W = 3;
const H = 2;
const PIXELS = [
  [255, 0, 0],
  [0, 255, 0],
  [0, 0, 255],
  [255, 255, 0],
  [0, 255, 255],
  [255, 0, 255],
];
const raw = Buffer.from(PIXELS.flat());
const base = () => sharp(raw, { raw: { width: W, height: H, channels: 3 } });

describe('decodeImage', () => {
  it('PNG, TIFF and lossless WebP decode to the same float RGB HWC', async () => {
    const expected = Float32Array.from(PIXELS.flat().map((v) => v / 255));
    for (const enc of [base().png(), base().tiff({ compression: 'lzw' }), base().webp({ lossless: true })]) {
      const img = await decodeImage(await enc.toBuffer());
      expect([img.width, img.height]).toEqual([W, H]);
      expect(img.data).toEqual(expected);
    }
  });

  it('JPEG decodes (lossy: within a few levels on a flat image)', async () => {
    const flat = await sharp({
      create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 120, b: 60 } },
    })
      .jpeg({ quality: 95 })
      .toBuffer();
    const img = await decodeImage(flat);
    expect(img.data[0]! * 255).toBeCloseTo(200, -1);
    expect(img.data[1]! * 255).toBeCloseTo(120, -1);
    expect(img.data[2]! * 255).toBeCloseTo(60, -1);
  });

  it('applies EXIF orientation (6 = rotate 90 degrees clockwise to display)', async () => {
    const jpeg = await base().png().toBuffer();
    const tagged = await sharp(jpeg).withMetadata({ orientation: 6 }).png().toBuffer();
    const img = await decodeImage(tagged);
    expect([img.width, img.height]).toEqual([H, W]);
    // Rotating clockwise puts the bottom-left pixel (yellow) at the top-left.
    expect(Array.from(img.data.subarray(0, 3)).map((v) => Math.round(v * 255))).toEqual([255, 255, 0]);
  });

  it('grey becomes RGB, RGBA drops alpha over white', async () => {
    const grey = await sharp(Buffer.from([0, 128, 255, 64]), { raw: { width: 2, height: 2, channels: 1 } })
      .png()
      .toBuffer();
    const g = await decodeImage(grey);
    expect(g.data.length).toBe(2 * 2 * 3);
    expect(Array.from(g.data.subarray(3, 6)).map((v) => Math.round(v * 255))).toEqual([128, 128, 128]);
    // Half-transparent black over white is mid grey; opaque red stays red.
    const rgba = await sharp(Buffer.from([0, 0, 0, 128, 255, 0, 0, 255]), {
      raw: { width: 2, height: 1, channels: 4 },
    })
      .png()
      .toBuffer();
    const c = await decodeImage(rgba);
    expect(c.data.length).toBe(6);
    expect(Math.round(c.data[0]! * 255)).toBeGreaterThan(120);
    expect(Math.round(c.data[0]! * 255)).toBeLessThan(135);
    expect(Array.from(c.data.subarray(3, 6)).map((v) => Math.round(v * 255))).toEqual([255, 0, 0]);
  });

  it('resizes while decoding', async () => {
    const img = await decodeImage(await base().png().toBuffer(), { resize: { width: 6, height: 4 } });
    expect([img.width, img.height, img.data.length]).toEqual([6, 4, 72]);
  });

  it('an undecodable buffer is a DataError with a one-line reason, not a libvips stack', async () => {
    const err = await decodeImage(Buffer.from('not an image')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).message).toMatch(/^<buffer>: cannot decode image: /);
    expect((err as DataError).message).not.toContain('\n');
    await expect(imageSize('/nonexistent/x.png')).rejects.toBeInstanceOf(DataError);
  });
});
