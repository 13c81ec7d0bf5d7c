// COCO bbox evaluation of 5,000 images x 20 ground truths x 100 detections (one category,
// class-agnostic like the thesis), plus an 11-category variant. pycocotools cannot be
// installed on these machines (no PyPI access; Debian ships no python3-pycocotools), so
// no reference is timed in the same run: the numbers are ms only.
import { execFileSync } from 'node:child_process';
import { medianMs, report } from '@bmc/bench-utils';
import { buildReport, evaluateCoco, indexDetections, indexGroundTruth } from '../dist/index.js';

/** CPU ms of one call: the machine is shared, so wall time alone overstates the cost under load. */
function cpuMs(fn) {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

function lcg(seed) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function makeSet({ images, gtPerImage, dtPerImage, categories, seed }) {
  const r = lcg(seed);
  const gt = {
    images: Array.from({ length: images }, (_, i) => ({ id: i + 1, width: 1024, height: 1024 })),
    categories: Array.from({ length: categories }, (_, k) => ({ id: k + 1, name: `class${k + 1}` })),
    annotations: [],
  };
  const dt = [];
  let id = 1;
  for (let i = 1; i <= images; i++) {
    const boxes = [];
    for (let g = 0; g < gtPerImage; g++) {
      const w = 20 + r() * 120;
      const h = 20 + r() * 120;
      const box = [r() * (1024 - w), r() * (1024 - h), w, h];
      const cat = 1 + Math.floor(r() * categories);
      boxes.push([box, cat]);
      gt.annotations.push({ id: id++, image_id: i, category_id: cat, bbox: box, area: w * h, iscrowd: 0 });
    }
    for (let d = 0; d < dtPerImage; d++) {
      let bbox;
      let cat;
      if (d < boxes.length * 2) {
        const [[x, y, w, h], c] = boxes[d % boxes.length];
        bbox = [
          x + (r() - 0.5) * 0.2 * w,
          y + (r() - 0.5) * 0.2 * h,
          w * (0.9 + 0.2 * r()),
          h * (0.9 + 0.2 * r()),
        ];
        cat = r() < 0.9 ? c : 1 + Math.floor(r() * categories);
      } else {
        bbox = [r() * 900, r() * 900, 10 + r() * 120, 10 + r() * 120];
        cat = 1 + Math.floor(r() * categories);
      }
      dt.push({ image_id: i, category_id: cat, bbox, score: r() });
    }
  }
  return { gt, dt };
}

const rows = [];
const notes = [];
const big = makeSet({ images: 5000, gtPerImage: 20, dtPerImage: 100, categories: 1, seed: 1 });
const gtIndex = indexGroundTruth(big.gt);
const dtIndex = indexDetections(big.dt, gtIndex);
const opts = { warmup: 1, iters: 3 };
rows.push({
  name: 'index 5,000 images: 100k GT + 500k detections (JSON objects -> typed arrays)',
  ms: await medianMs(() => indexDetections(big.dt, indexGroundTruth(big.gt)), opts),
});
let result;
rows.push({
  name: 'evaluateCoco 5,000 images x 20 GT x 100 dets, 1 category (evaluate + accumulate + summarize)',
  ms: await medianMs(() => {
    result = evaluateCoco(gtIndex, dtIndex);
  }, opts),
});
rows[rows.length - 1].extra =
  `CPU ${cpuMs(() => evaluateCoco(gtIndex, dtIndex)).toFixed(0)} ms, AP ${result.stats[0].toFixed(4)}`;
rows.push({
  name: 'buildReport (best-F1 sweep over 500k detections x 10 IoUs, per-class AP)',
  ms: await medianMs(() => buildReport(result), opts),
  extra: `CPU ${cpuMs(() => buildReport(result)).toFixed(0)} ms`,
});
const multi = makeSet({ images: 5000, gtPerImage: 20, dtPerImage: 100, categories: 11, seed: 2 });
const mg = indexGroundTruth(multi.gt);
const md = indexDetections(multi.dt, mg);
rows.push({
  name: 'evaluateCoco 5,000 images x 20 GT x 100 dets, 11 categories',
  ms: await medianMs(() => evaluateCoco(mg, md), opts),
  extra: `CPU ${cpuMs(() => evaluateCoco(mg, md)).toFixed(0)} ms`,
});
rows.push({
  name: 'evaluateCoco same, class-agnostic',
  ms: await medianMs(() => evaluateCoco(mg, md, { classAgnostic: true }), opts),
  extra: `CPU ${cpuMs(() => evaluateCoco(mg, md, { classAgnostic: true })).toFixed(0)} ms`,
});
notes.push(
  `load average at the end: ${(await import('node:os')).loadavg()[0].toFixed(1)} on ${(await import('node:os')).cpus().length} cores`,
);

let havePycoco = false;
try {
  execFileSync('/usr/bin/python3', ['-c', 'import pycocotools'], { stdio: 'ignore' });
  havePycoco = true;
} catch {}
notes.push(
  havePycoco
    ? 'pycocotools is importable here but this bench does not time it yet'
    : 'no reference timed: pycocotools is not installable on this machine (no PyPI; apt has no python3-pycocotools), so ms only',
);
report('metrics-coco-eval', rows, notes);
