import sharp from 'sharp';
import { CLASS_COLOURS } from '../annotate.js';
import type { Detection, RawPixels } from '../pipeline/types.js';

const r2 = (v: number) => Math.round(v * 100) / 100;
const rgb = (hex: string): [number, number, number] => [
  Number.parseInt(hex.slice(1, 3), 16),
  Number.parseInt(hex.slice(3, 5), 16),
  Number.parseInt(hex.slice(5, 7), 16),
];

/**
 * Detections as a GeoJSON FeatureCollection that QuPath (0.4 and later) imports with File > Import
 * objects: one Feature per cell, its box as a closed Polygon in level-0 pixels (QuPath's
 * coordinates: origin top left of the full-resolution image), `objectType: "detection"`, the class
 * as QuPath's `classification` (name and RGB colour) and the score under `measurements`.
 */
export function toQuPathGeoJson(detections: readonly Detection[]): object {
  return {
    type: 'FeatureCollection',
    features: detections.map((d) => {
      const [x1, y1, x2, y2] = d.box.map(r2) as [number, number, number, number];
      return {
        type: 'Feature',
        geometry: {
          type: 'Polygon',
          coordinates: [
            [
              [x1, y1],
              [x2, y1],
              [x2, y2],
              [x1, y2],
              [x1, y1],
            ],
          ],
        },
        properties: {
          objectType: 'detection',
          classification: { name: d.className, color: rgb(CLASS_COLOURS[d.classId % CLASS_COLOURS.length]!) },
          measurements: { score: Math.round(d.score * 1e4) / 1e4 },
        },
      };
    }),
  };
}

/** Longest side of the overview image. */
export const OVERVIEW_SIDE = 2048;

/**
 * A small PNG of the whole slide (at most {@link OVERVIEW_SIDE} px) with each detection drawn as a
 * rectangle (no labels: a slide has thousands), for a look at where the cells were found.
 */
export async function overviewPng(
  thumbnail: RawPixels,
  slide: { width: number; height: number },
  detections: readonly Detection[],
): Promise<Buffer> {
  const f = Math.min(1, OVERVIEW_SIDE / Math.max(thumbnail.width, thumbnail.height));
  const w = Math.max(1, Math.round(thumbnail.width * f));
  const h = Math.max(1, Math.round(thumbnail.height * f));
  const sx = w / slide.width;
  const sy = h / slide.height;
  const rects = detections.map((d) => {
    const c = CLASS_COLOURS[d.classId % CLASS_COLOURS.length];
    const x = d.box[0] * sx;
    const y = d.box[1] * sy;
    // At least 2 px so a cell stays visible on a whole-slide overview.
    const rw = Math.max(2, (d.box[2] - d.box[0]) * sx);
    const rh = Math.max(2, (d.box[3] - d.box[1]) * sy);
    return `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${rw.toFixed(1)}" height="${rh.toFixed(1)}" fill="none" stroke="${c}" stroke-width="1"/>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${rects.join('')}</svg>`;
  const base = await sharp(thumbnail.data, {
    raw: { width: thumbnail.width, height: thumbnail.height, channels: thumbnail.channels },
  })
    .resize(w, h, { fit: 'fill' })
    .png()
    .toBuffer();
  return sharp(base)
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png({ compressionLevel: 6 })
    .toBuffer();
}
