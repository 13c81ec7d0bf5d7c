import sharp from 'sharp';

export interface DrawnBox {
  /** xyxy in image pixels. */
  box: ArrayLike<number>;
  color: string;
  label?: string;
}

/**
 * Draws boxes over an RGB uint8 image by compositing an SVG layer with sharp
 * (libvips renders the SVG), and returns PNG bytes.
 */
export async function drawBoxesPng(
  rgb: Uint8Array,
  width: number,
  height: number,
  boxes: readonly DrawnBox[],
): Promise<Buffer> {
  const shapes = boxes.map((b) => {
    const [x1, y1, x2, y2] = [b.box[0]!, b.box[1]!, b.box[2]!, b.box[3]!];
    const label = b.label
      ? `<text x="${x1 + 2}" y="${Math.max(10, y1 - 2)}" font-size="10" font-family="sans-serif" fill="${b.color}">${b.label}</text>`
      : '';
    return `<rect x="${x1}" y="${y1}" width="${x2 - x1}" height="${y2 - y1}" fill="none" stroke="${b.color}" stroke-width="1.5"/>${label}`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`;
  return sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
}
