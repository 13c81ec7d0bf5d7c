// Profile of one training micro-batch of the thesis detector (R50 + FPN + PAN-attn + IoU head, 512x512,
// one image, the trainer's own trainStep) on the wasm backend with the engine kernels: where the time
// goes by phase (forward / backward), by tfjs kernel, and per convolution shape and kind (forward,
// input gradient, filter gradient) with achieved GFLOP/s, against the machine's sgemm rate measured in
// the same run (an onnxruntime MatMul) and its FMA peak (machine.mjs: nominal and measured).
// Run after `pnpm exec turbo run build --filter=@bmc/train...`: `pnpm --filter @bmc/train bench:step-profile`.
// Env: BMC_PROFILE_SIZE (512), BMC_PROFILE_THREADS (onnxruntime threads; default all cores),
// BMC_PROFILE_LAYOUT (the engine's layout option, default auto; v1: a0f647d's forms), BMC_PROFILE_BEFORE=gemm
// ('auto' without MLAS's NCHWc convolution, wasm's own Identity / Cast / Sum: 87ab9fa's forms, except that the
// 'taps' filter gradient is banded since 056d122),
// BMC_PROFILE_OUT (JSON path).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { chooseLayoutV1, kernelGeometry, registerV1Kernels } from './layout-v1.mjs';
import { machineInfo, peakFlops, uptime } from './machine.mjs';
import { randomBatch, startWasm, thesisStepContext } from './step-setup.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const train = await import('../dist/index.js');
const engine = await import('@bmc/engine');

const SIZE = Number(process.env.BMC_PROFILE_SIZE ?? 512);
const THREADS = Number(process.env.BMC_PROFILE_THREADS ?? availableParallelism());
const LAYOUT = process.env.BMC_PROFILE_LAYOUT ?? 'auto';
const OUT = process.env.BMC_PROFILE_OUT ?? here('./runs/step-profile.json');
const NCHWC = process.env.BMC_PROFILE_BEFORE !== 'gemm';
const NCHWC_BLOCK = NCHWC ? engine.nchwcBlockSize(engine.loadOrtNative()) : 1;

/** onnxruntime's sgemm (MLAS) rate on a large square MatMul: the achievable ceiling for im2col GEMMs. */
function sgemmGflops(n, threads) {
  const native = engine.loadOrtNative();
  const bytes = engine.encodeModel({
    inputs: [
      { name: 'a', shape: [n, n] },
      { name: 'b', shape: [n, n] },
    ],
    outputs: [{ name: 'c', shape: [n, n] }],
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['c'] }],
    int64Constants: {},
    floatScalars: {},
  });
  const s = native.newSession();
  s.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: true,
    enableMemPattern: true,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  const a = new Float32Array(n * n).map(() => Math.random());
  const b = new Float32Array(n * n).map(() => Math.random());
  const c = new Float32Array(n * n);
  const T = native.Tensor;
  const run = () =>
    s.run(
      { a: new T('float32', a, [n, n]), b: new T('float32', b, [n, n]) },
      { c: new T('float32', c, [n, n]) },
      {},
    );
  run();
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  s.dispose();
  const best = Math.min(...times);
  return (2 * n ** 3) / best / 1e6;
}

const machine = machineInfo();
const peak = peakFlops(machine);
console.log(
  `${machine.model}, ${machine.cpus} CPUs, ${machine.mhz} MHz; features ${JSON.stringify(machine.features)}`,
);
console.log(`fp32 peak ${peak.gflops.toFixed(0)} GFLOP/s: ${peak.how}`);
const loadStart = uptime();
console.log(`load before: ${loadStart}`);

await startWasm('step-profile');
// 'v1': the graph forms of a0f647d (bench/layout-v1.mjs), for a before/after profile.
const handle =
  LAYOUT === 'v1'
    ? registerV1Kernels({ threads: THREADS })
    : engine.installEngineKernels({ backend: 'wasm', threads: THREADS, layout: LAYOUT, nchwc: NCHWC });
if (NCHWC && LAYOUT !== 'v1') engine.registerCopyFreeWasmKernels();
console.log(engine.describeEngine().summary);

// Wrap the four convolution kernels with a clock keyed by kind and geometry.
const perShape = new Map();
let phase = 'forward';
const KINDS = {
  Conv2D: 'forward',
  FusedConv2D: 'forward',
  Conv2DBackpropInput: 'dx',
  Conv2DBackpropFilter: 'dw',
};
const restore = [];
for (const name of Object.keys(KINDS)) {
  const k = tf.getKernel(name, 'wasm');
  const inner = k.kernelFunc;
  const wrapped = (args) => {
    const { kind: longKind, g } = kernelGeometry(name, args.inputs, args.attrs);
    const kind = KINDS[name];
    const layout =
      LAYOUT === 'auto'
        ? engine.chooseLayout(longKind, g, NCHWC_BLOCK)
        : LAYOUT === 'v1'
          ? chooseLayoutV1(longKind, g)
          : LAYOUT;
    const key = `${kind} ${g.kH}x${g.kW}/${g.strideH} ${g.inC}->${g.outC} @${g.inH}x${g.inW} (${layout})`;
    const t0 = performance.now();
    const out = inner(args);
    const ms = performance.now() - t0;
    const flops = 2 * g.batch * g.outH * g.outW * g.kH * g.kW * g.inC * g.outC;
    const e = perShape.get(key) ?? { key, kind, layout, calls: 0, ms: 0, flops: 0, phase };
    e.calls += 1;
    e.ms += ms;
    e.flops += flops;
    perShape.set(key, e);
    return out;
  };
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...k, kernelFunc: wrapped });
  restore.push(() => {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(k);
  });
}

const { ctx } = thesisStepContext(SIZE, 1);
const batch = randomBatch(SIZE, 1);

// Forward vs backward: the first gradient kernel call marks the start of the backward pass.
const origDx = tf.getKernel('Conv2DBackpropInput', 'wasm').kernelFunc;
let backwardStart = 0;
tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
tf.registerKernel({
  kernelName: 'Conv2DBackpropInput',
  backendName: 'wasm',
  kernelFunc: (a) => {
    if (phase === 'forward') {
      phase = 'backward';
      backwardStart = performance.now();
    }
    return origDx(a);
  },
});

const t0w = performance.now();
train.trainStep(ctx, batch, 1e-4);
console.log(`warm-up micro-batch (sessions compile): ${(performance.now() - t0w).toFixed(0)} ms`);
perShape.clear();
phase = 'forward';

const byKernel = new Map();
let stepMs = 0;
let forwardMs = 0;
const prof = await tf.profile(() => {
  const t0 = performance.now();
  train.trainStep(ctx, batch, 1e-4);
  stepMs = performance.now() - t0;
  forwardMs = backwardStart - t0;
});
for (const k of prof.kernels) {
  if (k.name.endsWith('__op')) continue;
  const e = byKernel.get(k.name) ?? { name: k.name, ms: 0, calls: 0 };
  e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
  e.calls += 1;
  byKernel.set(k.name, e);
}
const loadEnd = uptime();
for (const r of restore.reverse()) r();
handle?.unregister();

const sgemm = sgemmGflops(2048, THREADS);
const shapes = [...perShape.values()].sort((a, b) => b.ms - a.ms);
const convMs = { forward: 0, dx: 0, dw: 0 };
const convFlops = { forward: 0, dx: 0, dw: 0 };
for (const s of shapes) {
  convMs[s.kind] += s.ms;
  convFlops[s.kind] += s.flops;
}
const kernels = [...byKernel.values()].sort((a, b) => b.ms - a.ms);
const gf = (flops, ms) => flops / ms / 1e6;

console.log(
  `\nprofiled micro-batch: ${stepMs.toFixed(0)} ms; forward (to the first gradient kernel) ${forwardMs.toFixed(0)} ms, backward + optimizer ${(stepMs - forwardMs).toFixed(0)} ms`,
);
console.log(
  `sgemm 2048^3 on onnxruntime (${THREADS} threads): ${sgemm.toFixed(0)} GFLOP/s; nominal peak ${peak.gflops.toFixed(0)}`,
);
for (const k of ['forward', 'dx', 'dw']) {
  console.log(
    `  conv ${k.padEnd(7)} ${convMs[k].toFixed(0).padStart(6)} ms  ${(convFlops[k] / 1e9).toFixed(1)} GFLOP  ${gf(convFlops[k], convMs[k]).toFixed(1)} GFLOP/s (${((100 * gf(convFlops[k], convMs[k])) / peak.gflops).toFixed(0)}% of peak)`,
  );
}
console.log('\ntop kernels (tf.profile):');
for (const e of kernels.slice(0, 12))
  console.log(`  ${e.name.padEnd(26)} ${e.ms.toFixed(0).padStart(7)} ms  ${e.calls} calls`);
console.log('\nconvolution shapes by time:');
for (const s of shapes.slice(0, 30)) {
  console.log(
    `  ${s.key.padEnd(52)} ${s.calls.toString().padStart(3)} calls ${s.ms.toFixed(0).padStart(6)} ms  ${gf(s.flops, s.ms).toFixed(1).padStart(6)} GFLOP/s`,
  );
}

const result = {
  suite: 'engine-step-profile',
  what: `one training micro-batch (1 image, ${SIZE}x${SIZE}) of the thesis detector through apps/train trainStep, wasm + engine kernels (layout ${LAYOUT}, ${THREADS} onnxruntime threads)`,
  command: 'pnpm --filter @bmc/train bench:step-profile',
  date: new Date().toISOString(),
  machine: {
    ...machine,
    peakGflops: peak.gflops,
    nominalPeakGflops: peak.nominalGflops,
    fmaPerCore: peak.measuredPerCore,
    peakHow: peak.how,
    sgemmGflops: sgemm,
  },
  load: { before: loadStart, after: loadEnd },
  engine: engine.describeEngine().onnxruntime,
  stepMs,
  forwardMs,
  backwardMs: stepMs - forwardMs,
  conv: Object.fromEntries(
    ['forward', 'dx', 'dw'].map((k) => [
      k,
      { ms: convMs[k], gflop: convFlops[k] / 1e9, gflops: gf(convFlops[k], convMs[k]) },
    ]),
  ),
  kernels: kernels.map((e) => ({ ...e, ms: Math.round(e.ms * 10) / 10 })),
  shapes: shapes.map((s) => ({
    ...s,
    ms: Math.round(s.ms * 10) / 10,
    gflops: Math.round(gf(s.flops, s.ms) * 10) / 10,
  })),
};
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(`${OUT}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
renameSync(`${OUT}.tmp`, OUT);
console.log(`\nresults: ${OUT}`);
process.exit(0);
