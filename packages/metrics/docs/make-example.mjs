// Regenerates docs/pr-curves-example.svg and docs/report-example.md from a synthetic
// class-agnostic case (run after `pnpm build`: node docs/make-example.mjs).
import { renameSync, writeFileSync } from 'node:fs';
import { buildReport, evaluateCoco, prCurves, prCurvesSvg, reportToMarkdown } from '../dist/index.js';

function lcg(seed) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
const r = lcg(7);
const gt = { images: [], categories: [{ id: 1, name: 'cell' }], annotations: [] };
const dt = [];
let id = 1;
for (let i = 1; i <= 200; i++) {
  gt.images.push({ id: i, width: 1024, height: 1024 });
  for (let g = 0; g < 15; g++) {
    const w = 30 + r() * 60;
    const h = 30 + r() * 60;
    const x = r() * (1024 - w);
    const y = r() * (1024 - h);
    gt.annotations.push({
      id: id++,
      image_id: i,
      category_id: 1,
      bbox: [x, y, w, h],
      area: w * h,
      iscrowd: 0,
    });
    if (r() < 0.95) {
      const q = r();
      const j = 0.15 * (1 - q);
      dt.push({
        image_id: i,
        category_id: 1,
        bbox: [
          x + (r() - 0.5) * j * w,
          y + (r() - 0.5) * j * h,
          w * (1 + (r() - 0.5) * j),
          h * (1 + (r() - 0.5) * j),
        ],
        score: 0.5 + 0.5 * q,
      });
    }
  }
  for (let f = 0; f < 3; f++) {
    dt.push({ image_id: i, category_id: 1, bbox: [r() * 900, r() * 900, 40, 40], score: r() * 0.8 });
  }
}
const res = evaluateCoco(gt, dt, { classAgnostic: true });
const write = (file, text) => {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
};
const here = new URL('.', import.meta.url).pathname;
write(
  `${here}pr-curves-example.svg`,
  prCurvesSvg(prCurves(res, [0.5, 0.75, 0.9]), { title: 'Synthetic cells, class-agnostic' }),
);
write(`${here}report-example.md`, reportToMarkdown(buildReport(res, { title: 'Synthetic cells (example)' })));
console.log(res.stats.map((v) => v.toFixed(4)).join(' '));
