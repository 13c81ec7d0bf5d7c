// Per-kernel comparison that a busy machine cannot skew: one thread on each side, timed in CPU time
// (onnxruntime with 1 intra-op thread runs on the calling thread, so process CPU time is the kernel's;
// PyTorch via torch_ref.py with clock 'cpu', thread CPU time). For the thesis step's convolution shapes
// at 512 px (one image): the engine before (a0f647d's graph forms, bench/layout-v1.mjs), 'auto'
// without MLAS's NCHWc convolution (gemm: 87ab9fa's forms; the filter gradient's 'taps' as it is now, banded since
// 056d122), after (the current 'auto'), and
// PyTorch 1.13; GFLOP/s against the measured per-core FMA peak; and the sums
// weighted by how often a thesis micro-batch calls each shape (bench/measured/step-profile-*.json).
// `pnpm --filter @bmc/train bench:kernels-cpu` after `pnpm build`. Env: BMC_KCPU_OUT (JSON path).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { startTorchRef, torchAvailable } from '@bmc/bench-utils';
import { chooseLayoutV1, kernelGeometry } from './layout-v1.mjs';
import { machineInfo, peakFlops, uptime } from './machine.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const OUT = process.env.BMC_KCPU_OUT ?? here('./runs/kernels-cpu.json');
const { chooseLayout, createOrtKernels, loadOrtNative, nchwcBlockSize } = await import('@bmc/engine');
const BLOCK = nchwcBlockSize(loadOrtNative());

await tf.setBackend('wasm');
tf.env().set('IS_TEST', false);
const machine = machineInfo();
const peak = peakFlops(machine);
const perCore = peak.measuredPerCore
  ? Math.max(peak.measuredPerCore.avx2GflopsPerCore, peak.measuredPerCore.avx512GflopsPerCore)
  : peak.nominalGflops / machine.cpus;
console.log(`${machine.model}; per-core fp32 FMA peak ${perCore.toFixed(0)} GFLOP/s (${peak.how})`);
const loadStart = uptime();

// Shape, and calls per thesis micro-batch (forward / input gradient / filter gradient).
const SHAPES = [
  { x: [1, 128, 128, 256], w: [3, 3, 256, 256], stride: 1, calls: [9, 9, 9] },
  { x: [1, 64, 64, 256], w: [3, 3, 256, 256], stride: 1, calls: [10, 10, 10] },
  { x: [1, 32, 32, 256], w: [3, 3, 256, 256], stride: 1, calls: [15, 15, 15] },
  { x: [1, 64, 64, 128], w: [3, 3, 128, 128], stride: 1, calls: [3, 3, 3] },
  { x: [1, 128, 128, 256], w: [3, 3, 256, 36], stride: 1, calls: [1, 1, 1] },
  { x: [1, 128, 128, 256], w: [3, 3, 256, 9], stride: 1, calls: [2, 2, 2] },
  { x: [1, 128, 128, 256], w: [3, 3, 256, 256], stride: 2, calls: [1, 1, 1] },
  { x: [1, 32, 32, 1024], w: [1, 1, 1024, 256], stride: 1, calls: [6, 6, 6] },
];
const KERNELS = { fwd: 'Conv2D', dx: 'Conv2DBackpropInput', dw: 'Conv2DBackpropFilter' };
const KIND = { fwd: 'forward', dx: 'backpropInput', dw: 'backpropFilter' };
const sets = Object.fromEntries(
  ['nhwc', 'transpose', 'flipped', 'taps', 'nchwc'].map((l) => [
    l,
    createOrtKernels({ backend: 'wasm', layout: l, threads: 1 }),
  ]),
);

const torch = torchAvailable() ? startTorchRef(1) : null;
const torchInfo = torch ? await torch.hello : null;

/** Median CPU ms of 3 runs after one warm-up (which compiles the session). */
function cpuMs(fn) {
  fn();
  const t = [];
  for (let i = 0; i < 3; i++) {
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    t.push((c.user + c.system) / 1000);
  }
  return t.sort((a, b) => a - b)[1];
}

const b = tf.backend();
const rows = [];
const sums = { before: 0, gemm: 0, after: 0, torch: 0 };
const sumsBy = { fwd: { ...sums }, dx: { ...sums }, dw: { ...sums } };
for (const s of SHAPES) {
  const info = tf.backend_util.computeConv2DInfo(s.x, s.w, s.stride, 1, 'same');
  const x = tf.randomUniform(s.x, -1, 1, 'float32', 1);
  const w = tf.randomUniform(s.w, -0.1, 0.1, 'float32', 2);
  const dy = tf.randomUniform(info.outShape, -1, 1, 'float32', 3);
  const attrs = { strides: [s.stride, s.stride], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1] };
  const inputs = { fwd: { x, filter: w }, dx: { dy, filter: w }, dw: { x, dy } };
  const at = { fwd: attrs, dx: { ...attrs, inputShape: s.x }, dw: { ...attrs, filterShape: s.w } };
  const flops = 2 * info.outHeight * info.outWidth * s.x[0] * s.w.reduce((a, c) => a * c, 1);
  const pad = [info.padInfo.top, info.padInfo.bottom, info.padInfo.left, info.padInfo.right];
  const t = torch ? await torch.ask({ conv: { x: s.x, w: s.w, stride: s.stride, pad, clock: 'cpu' } }) : null;
  const name = `${s.w[0]}x${s.w[1]}/${s.stride} ${s.w[2]}->${s.w[3]} @${s.x[1]}x${s.x[2]}`;
  for (const [k, kernel] of Object.entries(KERNELS)) {
    const { g } = kernelGeometry(kernel, inputs[k], at[k]);
    const forms = {
      before: chooseLayoutV1(KIND[k], g),
      gemm: chooseLayout(KIND[k], g),
      after: chooseLayout(KIND[k], g, BLOCK),
    };
    const ms = {};
    for (const [v, form] of Object.entries(forms)) {
      const fn = sets[form].configs.find((c) => c.kernelName === kernel).kernelFunc;
      ms[v] = cpuMs(() => b.disposeData(fn({ inputs: inputs[k], attrs: at[k], backend: b }).dataId));
    }
    const calls = s.calls[['fwd', 'dx', 'dw'].indexOf(k)];
    const row = {
      shape: name,
      kernel: k,
      calls,
      forms,
      beforeMs: ms.before,
      gemmMs: ms.gemm,
      afterMs: ms.after,
      torchMs: t?.[k] ?? null,
      gflopsBefore: flops / ms.before / 1e6,
      gflopsAfter: flops / ms.after / 1e6,
      gflopsTorch: t ? flops / t[k] / 1e6 : null,
    };
    rows.push(row);
    for (const [v, m] of [
      ['before', ms.before],
      ['gemm', ms.gemm],
      ['after', ms.after],
      ['torch', t?.[k] ?? 0],
    ]) {
      sums[v] += calls * m;
      sumsBy[k][v] += calls * m;
    }
    const pct = (g) => `${((100 * g) / perCore).toFixed(0)}%`;
    console.log(
      `${name.padEnd(26)} ${k} before ${ms.before.toFixed(1).padStart(7)} ms (${forms.before}) gemm ${ms.gemm.toFixed(1).padStart(7)} ms (${forms.gemm}) after ${ms.after.toFixed(1).padStart(7)} ms (${forms.after}, ${row.gflopsAfter.toFixed(0)} GF/s, ${pct(row.gflopsAfter)})` +
        (t
          ? `  torch ${t[k].toFixed(1).padStart(7)} ms (${row.gflopsTorch.toFixed(0)} GF/s, ${pct(row.gflopsTorch)})  after/torch ${(ms.after / t[k]).toFixed(2)}x`
          : ''),
    );
  }
  tf.dispose([x, w, dy]);
}
torch?.close();
for (const s of Object.values(sets)) s.dispose();
console.log('\nweighted by calls per thesis micro-batch (ms, 1 thread, CPU time):');
for (const [k, v] of Object.entries({ ...sumsBy, all: sums })) {
  console.log(
    `  ${k.padEnd(4)} before ${v.before.toFixed(0)}  gemm ${v.gemm.toFixed(0)}  after ${v.after.toFixed(0)}  torch ${v.torch.toFixed(0)}  after/torch ${(v.after / v.torch).toFixed(2)}x  before/torch ${(v.before / v.torch).toFixed(2)}x`,
  );
}
const result = {
  suite: 'engine-kernels-cpu',
  what: "the thesis step's convolution shapes at 512 px (1 image), 1 thread each side, CPU time: engine before (a0f647d graph forms) / gemm ('auto' without NCHWc, 87ab9fa) / after / PyTorch 1.13",
  nchwcBlock: BLOCK,
  command: 'pnpm --filter @bmc/train bench:kernels-cpu',
  date: new Date().toISOString(),
  machine: {
    cpu: machine.model,
    cores: machine.cpus,
    features: machine.features,
    mhz: machine.mhz,
    perCorePeakGflops: perCore,
    peakHow: peak.how,
    flags: machine.flags,
  },
  load: `uptime at start: ${loadStart}; at end: ${uptime()} (CPU-time figures: other load does not count, beyond shared caches and memory bandwidth)`,
  torch: torchInfo,
  rows,
  weighted: { ...sumsBy, all: sums },
};
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(`${OUT}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
renameSync(`${OUT}.tmp`, OUT);
console.log(`results: ${OUT}`);
