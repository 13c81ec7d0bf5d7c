import type { NumericArray } from '@bmc/core';
import type { AssignResult } from './types.js';

export interface RenderAssignmentOptions {
  /** Image size in pixels: the SVG's coordinate system is the input image's. */
  width: number;
  height: number;
  /** `[N, 4]` anchors the result refers to. */
  anchors: NumericArray;
  /** `[G, 4]` ground-truth boxes. */
  gtBoxes: NumericArray;
  result: AssignResult;
  /** Background image, any URL an SVG `<image>` accepts (typically a `data:image/png;base64,...` URL); omitted = none. */
  image?: string;
  /** Caption drawn at the top left. */
  title?: string;
  /** Draw positives as anchor outlines, centre dots or both (default `'both'`). */
  mark?: 'boxes' | 'centres' | 'both';
  /** Show ignored anchors' centres in grey (default false). */
  showIgnored?: boolean;
  /** Displayed size in CSS pixels (default: the image size times 2 for images under 400 px). */
  displayWidth?: number;
  /** One colour per ground truth, cycled. */
  colors?: readonly string[];
}

const DEFAULT_COLORS = [
  '#e6194b',
  '#3cb44b',
  '#4363d8',
  '#f58231',
  '#911eb4',
  '#42d4f4',
  '#f032e6',
  '#bfef45',
];

/**
 * An SVG picture of an assignment: for each ground truth its box (dashed), its
 * centre (a cross) and its positive anchors in its colour. Pure string
 * building, so it runs in Node and in the browser.
 */
export function renderAssignment(options: RenderAssignmentOptions): string {
  const { width, height, anchors, gtBoxes, result } = options;
  const colors = options.colors ?? DEFAULT_COLORS;
  const mark = options.mark ?? 'both';
  const displayWidth = options.displayWidth ?? (width < 400 ? width * 2 : width);
  const displayHeight = (displayWidth * height) / width;
  const f = (v: number) => Number(v.toFixed(2));
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f(displayWidth)}" height="${f(displayHeight)}" viewBox="0 0 ${width} ${height}" role="img">`,
  );
  out.push(
    `<title>${escapeXml(options.title ?? 'Label assignment: positive anchors per ground truth')}</title>`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  if (options.image) {
    out.push(
      `<image href="${escapeXml(options.image)}" x="0" y="0" width="${width}" height="${height}" preserveAspectRatio="none"/>`,
    );
  }
  const g = gtBoxes.length / 4;
  const counts = new Int32Array(g);
  const layers: string[][] = Array.from({ length: g }, () => []);
  const ignored: string[] = [];
  for (let i = 0; i < result.gtIndex.length; i++) {
    const j = result.gtIndex[i]!;
    const x1 = anchors[4 * i]!;
    const y1 = anchors[4 * i + 1]!;
    const x2 = anchors[4 * i + 2]!;
    const y2 = anchors[4 * i + 3]!;
    if (j === -2 && options.showIgnored) {
      ignored.push(`<circle cx="${f((x1 + x2) / 2)}" cy="${f((y1 + y2) / 2)}" r="0.8" fill="#888"/>`);
    }
    if (j < 0 || j >= g) continue;
    counts[j]++;
    const col = colors[j % colors.length]!;
    if (mark !== 'centres') {
      layers[j]!.push(
        `<rect x="${f(x1)}" y="${f(y1)}" width="${f(x2 - x1)}" height="${f(y2 - y1)}" fill="none" stroke="${col}" stroke-opacity="0.35" stroke-width="0.6"/>`,
      );
    }
    if (mark !== 'boxes') {
      layers[j]!.push(`<circle cx="${f((x1 + x2) / 2)}" cy="${f((y1 + y2) / 2)}" r="1.6" fill="${col}"/>`);
    }
  }
  out.push(...ignored);
  for (let j = 0; j < g; j++) {
    const col = colors[j % colors.length]!;
    const x1 = gtBoxes[4 * j]!;
    const y1 = gtBoxes[4 * j + 1]!;
    const x2 = gtBoxes[4 * j + 2]!;
    const y2 = gtBoxes[4 * j + 3]!;
    const cx = (x1 + x2) / 2;
    const cy = (y1 + y2) / 2;
    out.push(`<g>`, ...layers[j]!);
    out.push(
      `<rect x="${f(x1)}" y="${f(y1)}" width="${f(x2 - x1)}" height="${f(y2 - y1)}" fill="none" stroke="${col}" stroke-width="1.2" stroke-dasharray="4 2"/>`,
    );
    out.push(
      `<path d="M${f(cx - 4)} ${f(cy)}H${f(cx + 4)}M${f(cx)} ${f(cy - 4)}V${f(cy + 4)}" stroke="#000" stroke-width="1.2"/>`,
      `</g>`,
    );
  }
  const lines = [
    options.title ?? '',
    ...Array.from(counts, (k, j) => `GT ${j}: ${k} positive${k === 1 ? '' : 's'}`),
  ];
  // Text scales with the image so captions fit small crops and stay readable on large images.
  const fontSize = Math.min(12, Math.max(6, Math.round(width / 24)));
  lines
    .filter((s) => s.length > 0)
    .forEach((s, r) => {
      out.push(
        `<text x="3" y="${f(fontSize * (1.1 + 1.15 * r))}" font-family="sans-serif" font-size="${fontSize}" fill="#000" stroke="#fff" stroke-width="${f(fontSize / 4)}" paint-order="stroke">${escapeXml(s)}</text>`,
      );
    });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
