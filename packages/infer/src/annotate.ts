import sharp from 'sharp';
import type { Detection, RawPixels } from './pipeline/types.js';

/** Distinct colours per class (Okabe-Ito, readable by colour-blind viewers). */
export const CLASS_COLOURS = [
  '#E69F00',
  '#56B4E9',
  '#009E73',
  '#F0E442',
  '#0072B2',
  '#D55E00',
  '#CC79A7',
  '#000000',
];

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** An SVG overlay with one rectangle and a "class score" label per detection. */
export function overlaySvg(width: number, height: number, detections: readonly Detection[]): string {
  const stroke = Math.max(1, Math.round(Math.max(width, height) / 400));
  const font = Math.max(9, Math.round(Math.max(width, height) / 60));
  const parts = detections.map((d) => {
    const [x1, y1, x2, y2] = d.box;
    const c = CLASS_COLOURS[d.classId % CLASS_COLOURS.length];
    const label = `${esc(d.className)} ${d.score.toFixed(2)}`;
    const ty = y1 > font + 2 ? y1 - 3 : y2 + font;
    return (
      `<rect x="${x1.toFixed(1)}" y="${y1.toFixed(1)}" width="${(x2 - x1).toFixed(1)}" height="${(y2 - y1).toFixed(1)}" ` +
      `fill="none" stroke="${c}" stroke-width="${stroke}"/>` +
      `<text x="${x1.toFixed(1)}" y="${ty.toFixed(1)}" font-size="${font}" font-family="sans-serif" fill="${c}" ` +
      `stroke="white" stroke-width="${Math.max(1, font / 8).toFixed(1)}" paint-order="stroke">${label}</text>`
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
}

/** The image with boxes and scores drawn on it, as PNG or JPEG bytes. */
export async function annotate(
  image: RawPixels,
  detections: readonly Detection[],
  format: 'png' | 'jpeg' = 'png',
): Promise<Buffer> {
  const base = sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: image.channels },
  });
  const composed = base.composite([
    { input: Buffer.from(overlaySvg(image.width, image.height, detections)), top: 0, left: 0 },
  ]);
  return format === 'png'
    ? composed.png({ compressionLevel: 6 }).toBuffer()
    : composed.jpeg({ quality: 90 }).toBuffer();
}

/** Integer pixel rectangle of a box, grown by `margin` (fraction of its size) and clipped to the image. */
export function cropRect(box: Detection['box'], width: number, height: number, margin = 0.1) {
  const [x1, y1, x2, y2] = box;
  const mx = (x2 - x1) * margin;
  const my = (y2 - y1) * margin;
  const left = Math.min(width - 1, Math.max(0, Math.floor(x1 - mx)));
  const top = Math.min(height - 1, Math.max(0, Math.floor(y1 - my)));
  const right = Math.min(width, Math.ceil(x2 + mx));
  const bottom = Math.min(height, Math.ceil(y2 + my));
  return {
    left,
    top,
    width: Math.max(1, Math.min(width - left, right - left)),
    height: Math.max(1, Math.min(height - top, bottom - top)),
  };
}

/** One PNG per detection: the cell with a small margin, the input a cell classifier needs. */
export async function crops(
  image: RawPixels,
  detections: readonly Detection[],
  margin = 0.1,
): Promise<Buffer[]> {
  const src = sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: image.channels },
  });
  return Promise.all(
    detections.map((d) => {
      const r = cropRect(d.box, image.width, image.height, margin);
      return src.clone().extract(r).png().toBuffer();
    }),
  );
}
