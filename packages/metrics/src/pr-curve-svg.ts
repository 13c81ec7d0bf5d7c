import type { PrCurve } from './pr-curve.js';

export interface PrSvgOptions {
  title?: string;
  width?: number;
  height?: number;
  /** Stroke colours, cycled. */
  colors?: readonly string[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A standalone SVG plot of PR curves: recall on x, precision on y, both 0..1 with
 * ticks every 0.2, a grid, and a legend whose entries carry each curve's AP.
 * Pure string output (no DOM), identical in Node and the browser.
 */
export function prCurvesSvg(curves: readonly PrCurve[], options: PrSvgOptions = {}): string {
  const W = options.width ?? 480;
  const H = options.height ?? 400;
  const colors = options.colors ?? PALETTE;
  const left = 56;
  const right = 16;
  const top = options.title ? 36 : 16;
  const bottom = 48;
  const pw = W - left - right;
  const ph = H - top - bottom;
  const x = (v: number) => (left + v * pw).toFixed(2);
  const y = (v: number) => (top + (1 - v) * ph).toFixed(2);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<title>${escapeXml(options.title ?? 'Precision-recall curves')}</title>`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  if (options.title) {
    out.push(
      `<text x="${(W / 2).toFixed(2)}" y="22" text-anchor="middle" font-size="14">${escapeXml(options.title)}</text>`,
    );
  }
  // Grid and ticks.
  out.push('<g class="axes" stroke="#000000" stroke-width="1">');
  for (let i = 0; i <= 5; i++) {
    const v = i / 5;
    out.push(`<line x1="${x(v)}" y1="${y(0)}" x2="${x(v)}" y2="${y(1)}" stroke="#e0e0e0"/>`);
    out.push(`<line x1="${x(0)}" y1="${y(v)}" x2="${x(1)}" y2="${y(v)}" stroke="#e0e0e0"/>`);
    out.push(`<line x1="${x(v)}" y1="${y(0)}" x2="${x(v)}" y2="${(top + ph + 5).toFixed(2)}"/>`);
    out.push(`<line x1="${(left - 5).toFixed(2)}" y1="${y(v)}" x2="${x(0)}" y2="${y(v)}"/>`);
  }
  out.push(`<line x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(0)}"/>`);
  out.push(`<line x1="${x(0)}" y1="${y(0)}" x2="${x(0)}" y2="${y(1)}"/>`);
  out.push('</g>');
  out.push('<g class="tick-labels" fill="#000000">');
  for (let i = 0; i <= 5; i++) {
    const v = i / 5;
    out.push(
      `<text x="${x(v)}" y="${(top + ph + 18).toFixed(2)}" text-anchor="middle">${v.toFixed(1)}</text>`,
    );
    out.push(
      `<text x="${(left - 8).toFixed(2)}" y="${y(v)}" text-anchor="end" dy="4">${v.toFixed(1)}</text>`,
    );
  }
  out.push('</g>');
  out.push(`<text x="${x(0.5)}" y="${(H - 10).toFixed(2)}" text-anchor="middle">Recall</text>`);
  out.push(
    `<text x="14" y="${y(0.5)}" text-anchor="middle" transform="rotate(-90 14 ${y(0.5)})">Precision</text>`,
  );
  // Curves.
  curves.forEach((c, i) => {
    const pts = c.recall.map((r, j) => `${x(r)},${y(c.precision[j]!)}`).join(' ');
    out.push(
      `<polyline class="curve" fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${pts}"/>`,
    );
  });
  // Legend, lower left like pycocotools' plot.
  const lh = 18;
  const lx = left + 12;
  const ly = top + ph - 12 - lh * curves.length;
  const labels = curves.map((c) => `${c.label} (AP ${c.ap === null ? 'n/a' : c.ap.toFixed(4)})`);
  // About 7 px per character at font-size 12; no DOM here to measure text.
  const lw = Math.max(120, 40 + 7 * Math.max(0, ...labels.map((l) => l.length)));
  out.push('<g class="legend">');
  out.push(
    `<rect x="${lx - 6}" y="${ly - 4}" width="${lw}" height="${lh * curves.length + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#999999"/>`,
  );
  labels.forEach((label, i) => {
    const yy = ly + i * lh + lh / 2;
    out.push(
      `<line x1="${lx}" y1="${yy}" x2="${lx + 22}" y2="${yy}" stroke="${colors[i % colors.length]}" stroke-width="2"/>`,
    );
    out.push(`<text x="${lx + 28}" y="${yy + 4}">${escapeXml(label)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
