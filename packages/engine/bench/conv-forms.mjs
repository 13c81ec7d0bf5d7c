// The thesis step's heaviest convolution shapes (bench/measured/step-profile-*.json), each gradient
// kernel in every graph form, interleaved rep by rep on the same inputs: median ms, GFLOP/s, and the
// largest difference from the first form's result (test/kernels.test.ts checks every form against the
// tfjs cpu backend's kernels on smaller shapes).
// `node bench/conv-forms.mjs` after `pnpm build`. Env: BMC_FORMS_THREADS (default all cores),
// BMC_FORMS_REPS (default 5), BMC_FORMS_OUT (JSON path; default bench/runs/conv-forms.json).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { machineRecord } from '@bmc/bench-utils';
import { createOrtKernels } from '../dist/index.js';

const threads = Number(process.env.BMC_FORMS_THREADS ?? availableParallelism());
const reps = Number(process.env.BMC_FORMS_REPS ?? 5);
const out = process.env.BMC_FORMS_OUT ?? fileURLToPath(new URL('./runs/conv-forms.json', import.meta.url));
const loadavgAtStart = loadavg();
await tf.setBackend('wasm');
tf.env().set('IS_TEST', false);

// NHWC x, HWIO w; the thesis model at 512 px, one image (the FPN/PAN/head levels and ResNet stages).
const ALL_SHAPES = [
  { x: [1, 128, 128, 256], w: [3, 3, 256, 256], stride: 1 },
  { x: [1, 64, 64, 256], w: [3, 3, 256, 256], stride: 1 },
  { x: [1, 32, 32, 256], w: [3, 3, 256, 256], stride: 1 },
  { x: [1, 64, 64, 128], w: [3, 3, 128, 128], stride: 1 },
  { x: [1, 128, 128, 256], w: [3, 3, 256, 36], stride: 1 },
  { x: [1, 128, 128, 256], w: [3, 3, 256, 9], stride: 1 },
  { x: [1, 128, 128, 256], w: [3, 3, 256, 256], stride: 2 },
  { x: [1, 64, 64, 512], w: [1, 1, 512, 128], stride: 1 },
  // The other strided input gradients of the step (ResNet downsamples, PAN): sub-pixel phases vs ConvTranspose.
  { x: [1, 128, 128, 128], w: [3, 3, 128, 128], stride: 2 },
  { x: [1, 64, 64, 256], w: [3, 3, 256, 256], stride: 2 },
  { x: [1, 128, 128, 256], w: [1, 1, 256, 512], stride: 2 },
  { x: [1, 64, 64, 512], w: [1, 1, 512, 1024], stride: 2 },
];
// BMC_FORMS_SHAPES: 'all' (default) or indices into ALL_SHAPES, e.g. '0,5'.
const pickShapes = process.env.BMC_FORMS_SHAPES ?? 'all';
const SHAPES = pickShapes === 'all' ? ALL_SHAPES : pickShapes.split(',').map((i) => ALL_SHAPES[Number(i)]);
const FORMS = {
  Conv2DBackpropInput: ['nhwc', 'transpose', 'flipped', 'nchwc'],
  Conv2DBackpropFilter: ['nhwc', 'transpose', 'taps'],
};
const sets = {};
for (const forms of Object.values(FORMS))
  for (const f of forms) sets[f] ??= createOrtKernels({ backend: 'wasm', layout: f, threads });

const results = [];
const name = (s) => `${s.w[0]}x${s.w[1]}/${s.stride} ${s.w[2]}->${s.w[3]} @${s.x[1]}x${s.x[2]}`;
for (const s of SHAPES) {
  const info = tf.backend_util.computeConv2DInfo(s.x, s.w, s.stride, 1, 'same');
  const x = tf.randomUniform(s.x, -1, 1, 'float32', 1);
  const w = tf.randomUniform(s.w, -0.1, 0.1, 'float32', 2);
  const dy = tf.randomUniform(info.outShape, -1, 1, 'float32', 3);
  const attrs = { strides: [s.stride, s.stride], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1] };
  const flops = 2 * info.outShape.slice(0, 3).reduce((a, b) => a * b, 1) * s.w.reduce((a, b) => a * b, 1);
  const jobs = {
    Conv2DBackpropInput: [
      { dy, filter: w },
      { ...attrs, inputShape: s.x },
    ],
    Conv2DBackpropFilter: [
      { x, dy },
      { ...attrs, filterShape: s.w },
    ],
  };
  for (const [kernel, [inputs, at]] of Object.entries(jobs)) {
    const b = tf.backend();
    const fns = FORMS[kernel].map((f) => {
      const cfg = sets[f].configs.find((c) => c.kernelName === kernel);
      return [f, () => cfg.kernelFunc({ inputs, attrs: at, backend: b })];
    });
    const times = Object.fromEntries(FORMS[kernel].map((f) => [f, []]));
    const maxDiff = {};
    let ref;
    for (const [f, fn] of fns) {
      const o = fn();
      const v = b.readSync(o.dataId).slice();
      ref ??= v;
      let m = 0;
      for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i] - ref[i]));
      maxDiff[f] = m;
      b.disposeData(o.dataId);
    }
    for (let r = 0; r < reps; r++) {
      for (const [f, fn] of fns) {
        const t0 = performance.now();
        const o = fn();
        times[f].push(performance.now() - t0);
        b.disposeData(o.dataId);
      }
    }
    const row = { shape: name(s), kernel, gflop: flops / 1e9, forms: {} };
    for (const f of FORMS[kernel]) {
      const t = times[f].sort((a, c) => a - c);
      const ms = t[t.length >> 1];
      row.forms[f] = { ms, gflops: flops / ms / 1e6, maxAbsDiffVsFirst: maxDiff[f] };
    }
    results.push(row);
    console.log(
      `${row.shape.padEnd(26)} ${kernel.padEnd(21)} ` +
        FORMS[kernel]
          .map(
            (f) =>
              `${f} ${row.forms[f].ms.toFixed(1)} ms (${row.forms[f].gflops.toFixed(0)} GF/s, d ${row.forms[f].maxAbsDiffVsFirst.toExponential(1)})`,
          )
          .join('  '),
    );
  }
  tf.dispose([x, w, dy]);
}
for (const s of Object.values(sets)) s.dispose();
const doc = {
  date: new Date().toISOString(),
  command: `BMC_FORMS_THREADS=${threads} BMC_FORMS_REPS=${reps} BMC_FORMS_SHAPES=${pickShapes} node bench/conv-forms.mjs`,
  machine: machineRecord(),
  threads,
  reps,
  loadavgAtStart,
  loadavgAtEnd: loadavg(),
  results,
};
mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.tmp`, `${JSON.stringify(doc, null, 1)}\n`);
renameSync(`${out}.tmp`, out);
console.log(
  `load ${loadavg()
    .map((l) => l.toFixed(1))
    .join('/')}; results: ${out}`,
);
