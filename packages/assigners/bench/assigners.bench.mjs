// Assignment cost per image: bmc's N2-N5 anchors on a 512x512 input (195,840 anchors),
// 10 and 50 ground truths, 11 classes, predictions from a simulated mid-training network.
// Run after `pnpm build`: `pnpm bench`. Compares MaxIoU with torchvision's box_iou + Matcher
// (Debian PyTorch at /usr/bin/python3) measured in the same run; skipped with a message if absent.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { report } from '@bmc/bench-utils';
import { generateAnchors, panN2N5AnchorConfig } from '@bmc/core';
import { mulberry32 } from '@bmc/test-utils';
import { anchorFields, createAssigner } from '../dist/index.js';

const SIZE = 512;
const CLASSES = 11;
const RUNS = Number(process.env.BMC_BENCH_RUNS ?? 7);
const config = panN2N5AnchorConfig();
const fields = anchorFields(generateAnchors(config, SIZE, SIZE), config);
const n = fields.anchors.length / 4;

const rng = mulberry32;

/** Cells of 16..96 px; each anchor predicts its box moved towards the GT whose box holds its centre. */
function scene(g, seed) {
  const rand = rng(seed);
  const gtBoxes = new Float32Array(4 * g);
  for (let j = 0; j < g; j++) {
    const w = 16 + rand() * 80;
    const h = 16 + rand() * 80;
    const x = rand() * (SIZE - w);
    const y = rand() * (SIZE - h);
    gtBoxes.set([x, y, x + w, y + h], 4 * j);
  }
  const gtLabels = Int32Array.from({ length: g }, () => Math.floor(rand() * CLASSES));
  const a = fields.anchors;
  const clsProbs = new Float32Array(n * CLASSES);
  const predBoxes = new Float32Array(a);
  for (let i = 0; i < n; i++) {
    const cx = (a[4 * i] + a[4 * i + 2]) / 2;
    const cy = (a[4 * i + 1] + a[4 * i + 3]) / 2;
    for (let c = 0; c < CLASSES; c++) clsProbs[i * CLASSES + c] = 0.01 * rand();
    for (let j = 0; j < g; j++) {
      if (
        cx > gtBoxes[4 * j] &&
        cx < gtBoxes[4 * j + 2] &&
        cy > gtBoxes[4 * j + 1] &&
        cy < gtBoxes[4 * j + 3]
      ) {
        const t = 0.4 + 0.5 * rand();
        for (let k = 0; k < 4; k++)
          predBoxes[4 * i + k] = a[4 * i + k] + t * (gtBoxes[4 * j + k] - a[4 * i + k]);
        clsProbs[i * CLASSES + gtLabels[j]] = 0.2 + 0.7 * rand();
        break;
      }
    }
  }
  return { ...fields, gtBoxes, gtLabels, clsProbs, predBoxes };
}

function median(xs) {
  const s = [...xs].sort((p, q) => p - q);
  return s[Math.floor(s.length / 2)];
}

/** Median wall-clock and median process CPU time (ms); CPU time stays meaningful on a shared machine. */
function time(fn) {
  fn();
  fn();
  const ms = [];
  const cpu = [];
  let out;
  for (let r = 0; r < RUNS; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    out = fn();
    ms.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { ms: median(ms), cpu: median(cpu), out };
}

function torchvisionMatcherMs(input) {
  const py = '/usr/bin/python3';
  if (!existsSync(py)) return { skipped: `${py} not found` };
  const dir = mkdtempSync(join(tmpdir(), 'bmc-assigners-bench-'));
  try {
    writeFileSync(join(dir, 'anchors.f32'), new Float32Array(input.anchors));
    writeFileSync(join(dir, 'gt.f32'), input.gtBoxes);
    const script = `
import sys, time, numpy as np, torch
from torchvision.ops import box_iou
from torchvision.models.detection._utils import Matcher
torch.set_num_threads(int(sys.argv[3]))
a = torch.from_numpy(np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, 4))
g = torch.from_numpy(np.fromfile(sys.argv[2], dtype=np.float32).reshape(-1, 4))
m = Matcher(0.5, 0.4, allow_low_quality_matches=True)
ts, cs = [], []
for r in range(${RUNS + 2}):
    t0, c0 = time.perf_counter(), time.process_time()
    out = m(box_iou(g, a))
    ts.append((time.perf_counter() - t0) * 1000); cs.append((time.process_time() - c0) * 1000)
med = lambda x: sorted(x[2:])[len(x[2:]) // 2]
print(med(ts), med(cs), int((out >= 0).sum()))
`;
    const res = {};
    for (const threads of [1, 2]) {
      const p = spawnSync(
        py,
        ['-c', script, join(dir, 'anchors.f32'), join(dir, 'gt.f32'), String(threads)],
        {
          encoding: 'utf8',
        },
      );
      if (p.status !== 0) return { skipped: `python failed: ${p.stderr.trim().split('\n').at(-1)}` };
      const [ms, cpu, pos] = p.stdout.trim().split(/\s+/).map(Number);
      res[threads] = { ms, cpu, pos };
    }
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(
  `@bmc/assigners: ${n} anchors (N2-N5, ${SIZE}x${SIZE}), ${CLASSES} classes, median of ${RUNS} runs`,
);
{
  // The anchor index is built once per anchors array and cached; this is its one-off cost.
  const probe = scene(1, 1);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  createAssigner({ type: 'maxiou' }).assign({ ...probe, anchors: Float32Array.from(probe.anchors) });
  const c = process.cpuUsage(c0);
  console.log(
    `first call on a new anchors array (index build + validation, 1-GT MaxIoU): wall ${(performance.now() - t0).toFixed(1)} ms, cpu ${((c.user + c.system) / 1000).toFixed(1)} ms`,
  );
}
const targets = { maxiou: 50, atss: 50, paa: Number.NaN, ota: 200 };
const reportRows = [];
for (const g of [10, 50]) {
  const input = scene(g, 100 + g);
  console.log(`\n${g} ground truths`);
  console.log('assigner   wall ms   cpu ms   positives   target@10');
  const rows = {};
  for (const type of ['maxiou', 'atss', 'paa', 'ota']) {
    const assigner = createAssigner({ type });
    const { ms, cpu, out } = time(() => assigner.assign(input));
    rows[type] = { ms, cpu, pos: out.numPositives };
    reportRows.push({
      name: `${type} ${n} anchors, ${g} GTs`,
      ms,
      extra: `cpu ${cpu.toFixed(1)} ms, ${out.numPositives} positives`,
    });
    const target = g === 10 && Number.isFinite(targets[type]) ? `< ${targets[type]} ms` : '';
    console.log(
      `${type.padEnd(10)} ${ms.toFixed(1).padStart(7)}  ${cpu.toFixed(1).padStart(7)}   ${String(out.numPositives).padStart(9)}   ${target}`,
    );
  }
  const tv = torchvisionMatcherMs(input);
  if (tv.skipped) {
    console.log(`torchvision Matcher: skipped (${tv.skipped})`);
  } else {
    for (const threads of [1, 2]) {
      const { ms, cpu, pos } = tv[threads];
      const same = pos === rows.maxiou.pos ? 'same positive count' : `positives differ: ${pos}`;
      if (threads === 2) {
        reportRows.push({
          name: `maxiou vs torchvision box_iou + Matcher, ${g} GTs`,
          ms: rows.maxiou.ms,
          refMs: ms,
          ref: 'torchvision (2 threads)',
        });
      }
      console.log(
        `torchvision box_iou + Matcher, ${threads} thread(s): wall ${ms.toFixed(1)} ms, cpu ${cpu.toFixed(1)} ms; ` +
          `MaxIoU here / torchvision: wall ${(rows.maxiou.ms / ms).toFixed(2)}, cpu ${(rows.maxiou.cpu / cpu).toFixed(2)} (${same})`,
      );
    }
  }
}
report('assigners', reportRows);
