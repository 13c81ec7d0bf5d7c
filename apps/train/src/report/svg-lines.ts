/** One line of a chart: y values at x positions. */
export interface Series {
  label: string;
  x: number[];
  y: number[];
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd'];

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) ticks.push(Number(t.toPrecision(6)));
  return ticks;
}

/** A standalone SVG line chart (training-loss curves): axes, ticks, grid, legend. No DOM needed. */
export function lineChartSvg(
  series: readonly Series[],
  o: { title: string; xLabel: string; yLabel: string },
): string {
  const W = 560;
  const H = 360;
  const left = 60;
  const right = 140;
  const top = 36;
  const bottom = 48;
  const xs = series.flatMap((s) => s.x);
  const ys = series.flatMap((s) => s.y).filter(Number.isFinite);
  const x0 = Math.min(...xs, 0);
  const x1 = Math.max(...xs, 1);
  const y0 = Math.min(0, ...ys);
  const y1 = Math.max(...ys, 1e-6) * 1.05;
  const px = (x: number) => left + ((x - x0) / (x1 - x0 || 1)) * (W - left - right);
  const py = (y: number) => H - bottom - ((y - y0) / (y1 - y0 || 1)) * (H - top - bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${o.title}</text>`,
  ];
  for (const t of niceTicks(x0, x1)) {
    parts.push(`<line x1="${px(t)}" y1="${top}" x2="${px(t)}" y2="${H - bottom}" stroke="#eee"/>`);
    parts.push(`<text x="${px(t)}" y="${H - bottom + 16}" text-anchor="middle">${t}</text>`);
  }
  for (const t of niceTicks(y0, y1)) {
    parts.push(`<line x1="${left}" y1="${py(t)}" x2="${W - right}" y2="${py(t)}" stroke="#eee"/>`);
    parts.push(`<text x="${left - 6}" y="${py(t) + 4}" text-anchor="end">${t}</text>`);
  }
  parts.push(
    `<line x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}" stroke="black"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}" stroke="black"/>`,
    `<text x="${(left + W - right) / 2}" y="${H - 10}" text-anchor="middle">${o.xLabel}</text>`,
    `<text transform="translate(16 ${(top + H - bottom) / 2}) rotate(-90)" text-anchor="middle">${o.yLabel}</text>`,
  );
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = s.x
      .map((x, k) => [x, s.y[k]!] as const)
      .filter(([, y]) => Number.isFinite(y))
      .map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts}"/>`);
    const ly = top + 14 + i * 18;
    parts.push(
      `<line x1="${W - right + 10}" y1="${ly - 4}" x2="${W - right + 30}" y2="${ly - 4}" stroke="${color}" stroke-width="2"/>`,
    );
    parts.push(`<text x="${W - right + 36}" y="${ly}">${s.label}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** Moving average with a window of `k` steps, so noisy per-step losses read as curves. */
export function smooth(values: readonly number[], k: number): number[] {
  const out: number[] = [];
  let sum = 0;
  const q: number[] = [];
  for (const v of values) {
    q.push(v);
    sum += v;
    if (q.length > k) sum -= q.shift()!;
    out.push(sum / q.length);
  }
  return out;
}
