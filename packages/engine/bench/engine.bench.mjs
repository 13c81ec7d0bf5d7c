// Benchmark for @bmc/engine (run after `pnpm build`): per-kernel timings of the
// onnxruntime kernels (both graph layouts) against tfjs-wasm's own kernels and
// PyTorch (Debian's /usr/bin/python3, same run), then a ResNet fwd+bwd training
// step with and without the provider. Prints ms and ratios; writes JSON to
// bench/runs/results.json (or $BMC_BENCH_OUT).
// Options (env): BMC_BENCH_QUICK=1 fewer shapes; BMC_BENCH_SECTIONS=kernels,step,workers;
// BMC_BENCH_THREADS=n threads for onnxruntime and PyTorch (default: all cores).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { report, startTorchRef } from '@bmc/bench-utils';
import {
  createOrtKernels,
  describeEngine,
  registerOrtKernels,
  registerWasmFilterGrad,
} from '../dist/index.js';
import { buildResNet, resnetLoss } from './resnet-model.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const quick = process.env.BMC_BENCH_QUICK === '1';
const sections = (process.env.BMC_BENCH_SECTIONS ?? 'kernels,step,workers').split(',');
const PY = '/usr/bin/python3';
// Threads for onnxruntime and PyTorch alike (BMC_BENCH_THREADS=1 compares per core, robust on a busy machine).
const threads = Number(process.env.BMC_BENCH_THREADS ?? availableParallelism());

await tf.setBackend('wasm');
await tf.ready();
tf.env().set('IS_TEST', false);

function medianMs(fn, { minMs = 600, maxReps = 20 } = {}) {
  fn(); // warm-up: compiles the onnxruntime session
  const times = [];
  const end = performance.now() + minMs;
  while (times.length < 3 || (performance.now() < end && times.length < maxReps)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[times.length >> 1];
}

function torchAvailable() {
  if (!existsSync(PY)) return `${PY} not found`;
  const r = spawnSync(PY, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  return r.status === 0 ? true : `torch not importable: ${r.stderr.trim().split('\n').pop()}`;
}

// Shapes of ResNet convolutions at 256-512 px inputs (NHWC x, HWIO w).
const SHAPES = [
  { name: 'stem7x7s2 3->64 @256 b2', x: [2, 256, 256, 3], w: [7, 7, 3, 64], stride: 2 },
  { name: '3x3 64->64 @64 b2', x: [2, 64, 64, 64], w: [3, 3, 64, 64], stride: 1 },
  { name: '1x1 64->256 @64 b2', x: [2, 64, 64, 64], w: [1, 1, 64, 256], stride: 1 },
  { name: '3x3s2 128->128 @64 b2', x: [2, 64, 64, 128], w: [3, 3, 128, 128], stride: 2 },
  { name: '3x3 256->256 @16 b2', x: [2, 16, 16, 256], w: [3, 3, 256, 256], stride: 1 },
  { name: '1x1 1024->256 @16 b2', x: [2, 16, 16, 1024], w: [1, 1, 1024, 256], stride: 1 },
  { name: '3x3 512->512 @8 b2', x: [2, 8, 8, 512], w: [3, 3, 512, 512], stride: 1 },
  { name: '3x3 64->64 @128 b1 (512px)', x: [1, 128, 128, 64], w: [3, 3, 64, 64], stride: 1 },
  { name: '3x3 256->256 @64 b1 (512px FPN/head)', x: [1, 64, 64, 256], w: [3, 3, 256, 256], stride: 1 },
];
const shapes = quick ? SHAPES.filter((_, i) => [1, 2, 4].includes(i)) : SHAPES;

function tfPads(s) {
  const info = tf.backend_util.computeConv2DInfo(s.x, s.w, s.stride, 1, 'same');
  return { info, pad: [info.padInfo.top, info.padInfo.bottom, info.padInfo.left, info.padInfo.right] };
}

const VARIANTS = ['auto', 'nhwc', 'transpose'];
let kernelSets;

/** Median ms per kernel: wasm's own kernels, then our three layouts interleaved rep by rep (fairer on a shared machine). */
function timeKernels(s) {
  kernelSets ??= Object.fromEntries(
    VARIANTS.map((v) => [v, createOrtKernels({ backend: 'wasm', layout: v, threads })]),
  );
  const { info } = tfPads(s);
  const x = tf.randomUniform(s.x, -1, 1);
  const w = tf.randomUniform(s.w, -0.1, 0.1);
  const dy = tf.randomUniform(info.outShape, -1, 1);
  const attrs = { strides: [s.stride, s.stride], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1] };
  const jobs = {
    fwd: ['Conv2D', { x, filter: w }, attrs],
    dx: ['Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: s.x }],
    dw: ['Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: s.w }],
  };
  const r = { wasm: {} };
  const h0 = registerWasmFilterGrad();
  for (const [k, [name, inputs, at]] of Object.entries(jobs)) {
    r.wasm[k] = medianMs(() => tf.dispose(tf.engine().runKernel(name, inputs, at)), {
      minMs: 300,
      maxReps: 5,
    });
  }
  h0.unregister();
  const backend = tf.backend();
  for (const v of VARIANTS) r[v] = {};
  for (const [k, [name, inputs, at]] of Object.entries(jobs)) {
    const times = Object.fromEntries(VARIANTS.map((v) => [v, []]));
    const fns = VARIANTS.map((v) => {
      const cfg = kernelSets[v].configs.find((c) => c.kernelName === name);
      return [v, () => backend.disposeData(cfg.kernelFunc({ inputs, attrs: at, backend }).dataId)];
    });
    for (const [, f] of fns) f(); // compile
    const end = performance.now() + 1500;
    for (let rep = 0; rep < 15 && (rep < 3 || performance.now() < end); rep++) {
      for (const [v, f] of fns) {
        const t0 = performance.now();
        f();
        times[v].push(performance.now() - t0);
      }
    }
    for (const v of VARIANTS) {
      const t = times[v].sort((a, b) => a - b);
      r[v][k] = t[t.length >> 1];
    }
  }
  tf.dispose([x, w, dy]);
  return r;
}

const fmt = (v) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const results = {
  machine: {
    cpu: cpus()[0]?.model,
    cores: availableParallelism(),
    threads,
    node: process.version,
    loadavgAtStart: loadavg(),
  },
  date: new Date().toISOString(),
  engine: describeEngine().onnxruntime,
};
const torchOk = torchAvailable();
if (torchOk !== true) console.log(`PyTorch reference skipped: ${torchOk}`);
const torch = torchOk === true ? startTorchRef(threads) : null;
if (torch) results.torch = await torch.hello;

/** Element-wise minimum of two {variant: {kernel: ms}} records. */
function minOf(a, b) {
  const out = {};
  for (const [v, ks] of Object.entries(a)) {
    out[v] = {};
    for (const [k, ms] of Object.entries(ks)) out[v][k] = Math.min(ms, b[v][k]);
  }
  return out;
}

if (sections.includes('kernels')) {
  console.log(`\n== per-kernel, ms (median); ratio = wasm / ours, ours / torch (${threads} threads) ==`);
  results.kernels = [];
  for (const s of shapes) {
    // PyTorch and ours back to back, twice, keeping each side's best round:
    // other work on a shared machine comes and goes within seconds.
    let r;
    let t = null;
    for (let round = 0; round < 2; round++) {
      const tr = torch
        ? await torch.ask({ conv: { x: s.x, w: s.w, stride: s.stride, pad: tfPads(s).pad } })
        : null;
      const rr = timeKernels(s);
      r = r ? minOf(r, rr) : rr;
      t = tr ? (t ? minOf({ t }, { t: tr }).t : tr) : null;
    }
    results.kernels.push({ shape: s, ...r, torch: t });
    for (const k of ['fwd', 'dx', 'dw']) {
      const ours = r.auto[k];
      console.log(
        `${s.name.padEnd(38)} ${k.padEnd(3)} wasm ${fmt(r.wasm[k]).padStart(6)}  ours(auto) ${fmt(ours).padStart(6)}  [nhwc ${fmt(r.nhwc[k]).padStart(6)}  transpose ${fmt(r.transpose[k]).padStart(6)}]` +
          (t ? `  torch ${fmt(t[k]).padStart(6)}` : '') +
          `   wasm/ours x${(r.wasm[k] / ours).toFixed(1)}` +
          (t ? `  ours/torch x${(ours / t[k]).toFixed(2)}` : ''),
      );
    }
  }
  const sum = (v, k) => results.kernels.reduce((a, e) => a + e[v][k], 0);
  for (const k of ['fwd', 'dx', 'dw']) {
    const tt = results.kernels.every((e) => e.torch)
      ? results.kernels.reduce((a, e) => a + e.torch[k], 0)
      : null;
    console.log(
      `sum over shapes ${k}: wasm ${fmt(sum('wasm', k))}  ours ${fmt(sum('auto', k))}  nhwc ${fmt(sum('nhwc', k))}  transpose ${fmt(sum('transpose', k))}` +
        (tt ? `  torch ${fmt(tt)}  ours/torch x${(sum('auto', k) / tt).toFixed(2)}` : ''),
    );
  }
  for (const v of VARIANTS) kernelSets[v].dispose();
}

function timeStep(depth, batch, size, setup) {
  const model = buildResNet({ depth, seed: 7 });
  const x = tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', 3);
  const h = setup();
  const step = () => {
    const { value, grads } = tf.variableGrads(() => resnetLoss(model, x), model.trainable);
    tf.dispose([value, ...Object.values(grads)]);
  };
  const before = tf.memory().numTensors;
  const ms = medianMs(step, { minMs: 2000, maxReps: 8 });
  const leak = tf.memory().numTensors - before;
  h?.unregister();
  model.dispose();
  x.dispose();
  return { ms, leak };
}

if (sections.includes('step')) {
  const [depth, batch, size] = quick ? [18, 1, 128] : [18, 2, 256];
  console.log(`\n== ResNet${depth} body fwd+bwd (inference-mode BN), batch ${batch}, ${size}x${size}, ms ==`);
  // PyTorch before and after ours, keeping its better time (shared machine).
  const torchStep = async () => (torch ? (await torch.ask({ resnet: { depth, batch, size } })).step : null);
  const t1 = await torchStep();
  const ours = timeStep(depth, batch, size, () => registerOrtKernels({ backend: 'wasm', threads }));
  const t2 = await torchStep();
  const wasm = timeStep(depth, batch, size, () => registerWasmFilterGrad());
  const t = t1 === null ? null : Math.min(t1, t2);
  results.step = {
    depth,
    batch,
    size,
    ours: ours.ms,
    wasm: wasm.ms,
    torch: t,
    leaks: [ours.leak, wasm.leak],
  };
  console.log(
    `with provider ${fmt(ours.ms)}  wasm only ${fmt(wasm.ms)}  speed-up x${(wasm.ms / ours.ms).toFixed(2)}` +
      (t
        ? `  torch ${fmt(t)}  ours/torch x${(ours.ms / t).toFixed(2)}  wasm/torch x${(wasm.ms / t).toFixed(2)}`
        : '') +
      `  (tensor leak per step: ${ours.leak}, ${wasm.leak})`,
  );
}

if (sections.includes('workers')) {
  const mod = await import('./workers.mjs').catch(() => null);
  if (mod) results.workers = await mod.benchWorkers({ quick, fmt });
  else console.log('\n== data-parallel workers: not implemented ==');
}

torch?.close();
results.machine.loadavgAtEnd = loadavg();
console.log(
  `\nload average (1/5/15 min) at start ${results.machine.loadavgAtStart.map((l) => l.toFixed(1)).join('/')}, end ${loadavg()
    .map((l) => l.toFixed(1))
    .join('/')} (other work on this machine skews absolute times; ratios are measured side by side)`,
);
// runs/ is git- and biome-ignored: results are per machine (the README records measured ones, bench/measured/).
const out = process.env.BMC_BENCH_OUT ?? here('./runs/results.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(`${out}.tmp`, `${JSON.stringify(results, null, 1)}\n`);
renameSync(`${out}.tmp`, out);
console.log(`\nresults: ${out}`);

// The rows `pnpm bench`'s summary table shows (runs/bench/engine.json).
const rows = [];
if (results.step) {
  const { depth, batch, size, ours, wasm, torch: t } = results.step;
  const name = `ResNet${depth} fwd+bwd step b${batch} ${size}px`;
  rows.push({ name: `${name}, engine vs tfjs-wasm`, ms: ours, refMs: wasm, ref: 'tfjs-wasm + fallback dW' });
  if (t)
    rows.push({
      name: `${name}, engine vs PyTorch`,
      ms: ours,
      refMs: t,
      ref: `PyTorch 1.13 (${threads} thread(s))`,
    });
}
for (const w of results.workers ?? []) {
  rows.push({
    name: `data-parallel: 2 replicas vs 1, ${w.engine}`,
    ms: w.two.stepMs,
    refMs: w.one.stepMs,
    ref: '1 replica',
  });
}
report('engine', rows, [`threads ${threads}; full results: ${out}`]);
