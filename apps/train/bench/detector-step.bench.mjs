// Training step of the published detector (buildDetector('thesis'): R50, FPN P2-P5, PAN-attn N2-N5,
// IoU head) at 512x512 batch 2 on the wasm backend with the engine kernels, against the same model in
// PyTorch (tooling/bench/thesis_model.py via /usr/bin/python3, same run, 2 threads). Ours runs the
// trainer's own step (apps/train trainStep) with the thesis preset's micro-batches of one image; PyTorch
// runs the whole batch at once. Run after the workspace is built: `pnpm bench:step` (also part of
// `pnpm bench`). Prints median ms per step, the ratio ours / PyTorch, a per-phase breakdown of one
// micro-batch and the top kernels from tf.profile. Slow: tens of seconds per step on 2 cores.
// Env: BMC_STEP_ITERS (timed steps, default 3), BMC_STEP_TORCH=thesis|both|none (default thesis),
// BMC_STEP_TORCH_ITERS (default 2), BMC_STEP_PROFILE=0 skips the profiled step, BMC_STEP_SIZE (512),
// BMC_STEP_BATCH (2), BMC_STEP_MICRO (images per forward/backward, default 1; 0 = whole batch).
import { fileURLToPath } from 'node:url';
import { report, runPython, torchAvailable } from '@bmc/bench-utils';
import { describeEngine, installEngineKernels } from '@bmc/engine';
import { detectionLoss } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { assignBatch, clipGradNorm, headOutputs, trainableParams, trainStep } from '../dist/index.js';
import { uptime } from './machine.mjs';
import { median, randomBatch, startWasm, thesisStepContext, timeReplicaSteps } from './step-setup.mjs';

// Micro-batches of one image by default, as the thesis preset trains (tfjs-wasm's heap is capped at 4 GiB;
// one 512x512 image of a lean step grows it to ~1.1 GiB, bench/memory.bench.mjs).
// BMC_STEP_SIZE / BMC_STEP_BATCH change both sides alike.
const SIZE = Number(process.env.BMC_STEP_SIZE ?? 512);
const BATCH = Number(process.env.BMC_STEP_BATCH ?? 2);
const MICRO = Number(process.env.BMC_STEP_MICRO ?? 1);
// Data-parallel replicas for the second measurement (0 or 1: skipped); each gets one onnxruntime thread.
const REPLICAS = Number(process.env.BMC_STEP_REPLICAS ?? 2);
const ITERS = Number(process.env.BMC_STEP_ITERS ?? 3);
const TORCH = process.env.BMC_STEP_TORCH ?? 'thesis';
const TORCH_ITERS = Number(process.env.BMC_STEP_TORCH_ITERS ?? 2);
const PROFILE = process.env.BMC_STEP_PROFILE !== '0';

const backend = await startWasm('detector-step bench');
installEngineKernels({ backend: 'wasm' });
console.log(`backend ${backend.name}; engine: ${describeEngine().summary}`);

const { config, ctx } = thesisStepContext(SIZE, MICRO);
const params = trainableParams(ctx.model);
console.log(
  `thesis: ${ctx.model.countParams()} params, ${params.reduce((s, p) => s + p.variable.size, 0)} trainable, ${ctx.anchors.boxes.length / 4} anchors`,
);

const batch = randomBatch(SIZE, BATCH);
const LR = 1e-4;
const wasmHeapBytes = () => tf.backend().wasm?.HEAPU8?.buffer.byteLength ?? Number.NaN;

const micro = MICRO > 0 && MICRO < BATCH ? MICRO : BATCH;
const microBatch = {
  ...batch,
  images: batch.images.subarray(0, micro * SIZE * SIZE * 3),
  batchSize: micro,
  boxes: batch.boxes.slice(0, micro),
  labels: batch.labels.slice(0, micro),
};

/**
 * One micro-batch through apps/train's step with a clock on each phase (same calls, same order, no
 * accumulation): where the time of a step goes.
 */
function timedStep(logHeap = false) {
  const mb = microBatch;
  const t = { forward: 0, assignment: 0, loss: 0, backward: 0, optimizer: 0 };
  const t0 = performance.now();
  const x = tf.tensor4d(mb.images, [mb.batchSize, SIZE, SIZE, 3]);
  const variables = params.map((p) => p.variable);
  let numPositives = 0;
  const { value, grads } = tf.variableGrads(() => {
    if (logHeap) console.log(`  wasm heap before forward ${(wasmHeapBytes() / 2 ** 30).toFixed(2)} GiB`);
    let s = performance.now();
    const out = headOutputs(ctx.model.apply(x, { training: true }));
    t.forward = performance.now() - s;
    if (logHeap) console.log(`  wasm heap after forward ${(wasmHeapBytes() / 2 ** 30).toFixed(2)} GiB`);
    s = performance.now();
    const targets = assignBatch(ctx, mb, out.clsLogits, out.boxDeltas);
    t.assignment = performance.now() - s;
    s = performance.now();
    const loss = detectionLoss(out, ctx.anchors.boxes, targets, ctx.loss);
    loss.total.dataSync();
    numPositives = loss.numPositives;
    t.loss = performance.now() - s;
    return loss.total;
  }, variables);
  x.dispose();
  const total = value.dataSync()[0];
  value.dispose();
  const s = performance.now();
  clipGradNorm(grads, ctx.clipGradNorm);
  ctx.optimizer.apply(params, grads, LR);
  tf.dispose(grads);
  t.optimizer = performance.now() - s;
  const ms = performance.now() - t0;
  // The tape's backward pass runs inside variableGrads after the loss closure returns.
  t.backward = ms - t.forward - t.assignment - t.loss - t.optimizer;
  return { ms, phases: t, total, numPositives };
}

console.log(`load before: ${uptime()}`);
const warm = timedStep(true);
console.log(
  `warm-up (one micro-batch of ${micro}): ${warm.ms.toFixed(0)} ms (loss ${warm.total.toFixed(4)}, ${warm.numPositives} positives)`,
);
const breakdowns = [timedStep(), timedStep()];
const breakdown = breakdowns.sort((a, b) => a.ms - b.ms)[0];
console.log(`\nbreakdown of one micro-batch of ${micro} (faster of 2, ${breakdown.ms.toFixed(0)} ms):`);
for (const [k, v] of Object.entries(breakdown.phases)) {
  console.log(`  ${k.padEnd(11)} ${v.toFixed(0).padStart(8)} ms  ${((100 * v) / breakdown.ms).toFixed(1)}%`);
}

// The timed steps: the trainer's trainStep, batch BATCH in micro-batches of MICRO.
trainStep(ctx, batch, LR);
// Counted after a full step, which creates the optimizer's momentum buffers.
const before = tf.memory().numTensors;
const steps = [];
for (let i = 0; i < ITERS; i++) {
  const t0 = performance.now();
  const r = trainStep(ctx, batch, LR);
  const ms = performance.now() - t0;
  steps.push(ms);
  console.log(`step ${i + 1}: ${ms.toFixed(0)} ms (loss ${r.total.toFixed(4)}, ${r.numPositives} positives)`);
}
const leaked = tf.memory().numTensors - before;
const medianMs = median(steps);
console.log(`load after ours: ${uptime()}`);

// The same steps with data-parallel replicas (run.replicas): the batch split across worker threads.
let replicaRun;
if (REPLICAS > 1 && BATCH > 1) {
  replicaRun = await timeReplicaSteps({
    ctx,
    batch,
    lr: LR,
    config,
    replicas: REPLICAS,
    iters: ITERS,
    say: console.log,
  });
  installEngineKernels({ backend: 'wasm' });
  console.log(`load after replicas: ${uptime()}`);
}

let topKernels = [];
if (PROFILE) {
  let stepMs = 0;
  const prof = await tf.profile(() => {
    stepMs = timedStep().ms;
  });
  const byName = new Map();
  for (const k of prof.kernels) {
    const e = byName.get(k.name) ?? { name: k.name, ms: 0, calls: 0 };
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    e.calls += 1;
    byName.set(k.name, e);
  }
  // `*__op` entries are op scopes (customGrad wrappers such as fusedConv2d__op) whose time includes the
  // kernel they call (FusedConv2D): left out so that shares are not counted twice.
  const all = [...byName.values()].filter((e) => !e.name.endsWith('__op')).sort((a, b) => b.ms - a.ms);
  const sum = all.reduce((s, e) => s + e.ms, 0);
  topKernels = all.slice(0, 12).map((e) => ({ ...e, share: e.ms / sum }));
  console.log(
    `\ntop kernels of a profiled step (${stepMs.toFixed(0)} ms wall, ${sum.toFixed(0)} ms in kernels):`,
  );
  for (const e of topKernels) {
    console.log(
      `  ${e.name.padEnd(24)} ${e.ms.toFixed(0).padStart(8)} ms  ${(100 * e.share).toFixed(1).padStart(5)}%  ${e.calls} calls`,
    );
  }
}

const rows = [
  {
    name: `thesis train step ${SIZE}x${SIZE} b${BATCH}${micro < BATCH ? ` (micro-batches of ${micro})` : ''} (wasm + engine)`,
    ms: medianMs,
  },
];
if (replicaRun) {
  rows.push({
    name: `thesis train step ${SIZE}x${SIZE} b${BATCH}, ${replicaRun.replicas} data-parallel replicas (${replicaRun.threads} ort thread each)`,
    ms: replicaRun.ms,
  });
}
const notes = [
  `ours: warm-up 1 step, median of ${ITERS} steps (${steps.map((m) => m.toFixed(0)).join(', ')} ms); leaked tensors ${leaked}`,
];
if (TORCH !== 'none' && torchAvailable()) {
  const script = fileURLToPath(new URL('../../../tooling/bench/thesis_model.py', import.meta.url));
  console.log(`\nPyTorch (${TORCH}, warm-up 1, ${TORCH_ITERS} steps); load before: ${uptime()}`);
  const py = runPython(
    `import runpy, sys\nsys.argv = [${JSON.stringify(script)}, ${JSON.stringify(TORCH)}, '${TORCH_ITERS}', '${SIZE}', '${BATCH}']\nrunpy.run_path(sys.argv[0], run_name='__main__')`,
    { timeoutMs: 1_800_000 },
  );
  console.log(`PyTorch ${py.torch}, ${py.threads} threads: ${JSON.stringify(py)}`);
  for (const r of rows) {
    r.refMs = py.thesis.ms;
    r.ref = `PyTorch thesis b${BATCH}`;
  }
  if (py.baseline)
    rows.push({ name: 'PyTorch baseline RetinaNet R50-FPN step (reference only)', ms: py.baseline.ms });
  notes.push(`PyTorch params thesis ${py.thesis.params} (trainable ${py.thesis.trainable})`);
  notes.push(`load after PyTorch: ${uptime()}`);
} else {
  notes.push('PyTorch reference skipped (BMC_STEP_TORCH=none or /usr/bin/python3 has no torch)');
}
if (replicaRun) {
  notes.push(
    `replicas: median of ${ITERS} (${replicaRun.times.map((m) => m.toFixed(0)).join(', ')} ms); leaked tensors main ${replicaRun.leakedMain}, workers ${replicaRun.leakedWorkers.join(', ')}`,
  );
}
notes.push(
  `phases ms of one micro-batch of ${micro}: ${JSON.stringify(Object.fromEntries(Object.entries(breakdown.phases).map(([k, v]) => [k, Math.round(v)])))}`,
);
notes.push(`top kernels: ${topKernels.map((e) => `${e.name} ${(100 * e.share).toFixed(0)}%`).join(', ')}`);
report('detector-step', rows, notes);
