import { deflateSync } from 'node:zlib';

/**
 * A band neutrophil drawn as a U: a lower half-annulus plus two vertical
 * arms, the shape whose bounding-box centre falls in the hollow, on
 * background. Local and tiny on purpose (the synthetic smear generator lives
 * in @bmc/data; this package must not depend on it).
 */
export const BAND = { cx: 80, cy: 70, rOuter: 44, rInner: 30, armTop: 30 } as const;
export const IMAGE_SIZE = 160;

/** Is the point on the cell? */
export function onBand(x: number, y: number): boolean {
  const { cx, cy, rOuter, rInner, armTop } = BAND;
  if (y >= cy) {
    const d = Math.hypot(x - cx, y - cy);
    return d >= rInner && d <= rOuter;
  }
  if (y < armTop) return false;
  const dx = Math.abs(x - cx);
  return dx >= rInner && dx <= rOuter;
}

/** Tight box of the band: x 36..124, y 30..114. */
export function bandBox(): [number, number, number, number] {
  const { cx, cy, rOuter, armTop } = BAND;
  return [cx - rOuter, armTop, cx + rOuter, cy + rOuter];
}

/** RGB raster: pale pink smear background, violet band with a darker rim. */
export function rasterise(size = IMAGE_SIZE): Uint8Array {
  const px = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = 3 * (y * size + x);
      let rgb = [244, 226, 232];
      if (onBand(x + 0.5, y + 0.5)) {
        const rim = !onBand(x - 1.5, y + 0.5) || !onBand(x + 2.5, y + 0.5) || !onBand(x + 0.5, y - 1.5);
        rgb = rim ? [92, 52, 140] : [128, 86, 176];
      }
      px.set(rgb, o);
    }
  }
  return px;
}

/** Minimal PNG (8-bit RGB, no interlace) as a data URL, for the SVG background. */
export function pngDataUrl(rgb: Uint8Array, width: number, height: number): string {
  const raw = new Uint8Array(height * (1 + 3 * width));
  for (let y = 0; y < height; y++)
    raw.set(rgb.subarray(3 * width * y, 3 * width * (y + 1)), y * (1 + 3 * width) + 1);
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const png = Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
  return `data:image/png;base64,${png.toString('base64')}`;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

function crc32(buf: Uint8Array): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
