// The thesis detector's training step (apps/train trainStep: R50, FPN P2-P5, PAN-attn N2-N5, IoU head,
// OTA, 512x512, batch 2 in micro-batches of one image) on tfjs-wasm with the engine kernels, side by side
// in one run with the same architecture in PyTorch 1.13 (tooling/bench/thesis_model.py, 2 threads):
// - PyTorch, timed before and after ours (the faster of the two runs is the reference: other jobs on a
//   shared machine come and go, and only ever slow a run down);
// - ours with the engine's graph forms as they were at a0f647d (bench/layout-v1.mjs: "before");
// - ours as it is ("after"), one process with onnxruntime on all cores;
// - ours as it is with 2 data-parallel replicas (apps/train ReplicaPool, 1 onnxruntime thread each).
// Records the machine (lscpu model and flags, AVX2 / AVX-512 / VNNI / BF16 / AMX, measured FMA peak)
// and the load (uptime before and after each part). Run after building apps/train and its dependencies
// (`pnpm exec turbo run build --filter=@bmc/train...`): `pnpm --filter @bmc/train bench:thesis-step`.
// Env: BMC_STEP_ITERS (timed steps per variant, default 2), BMC_STEP_TORCH_ITERS (default 2),
// BMC_STEP_BEFORE=0 skips the "before" variant, BMC_STEP_BEFORE=gemm makes it 87ab9fa's engine ('auto'
// without MLAS's NCHWc convolution, wasm's own copying Identity / Cast / Sum) instead of a0f647d's forms,
// BMC_STEP_REPLICAS (default 2; 0 skips), BMC_STEP_REPLICA_THREADS (onnxruntime threads per replica; default the cores
// divided among them),
// BMC_STEP_OUT (JSON; default bench/runs/step.json), BMC_STEP_SIZE (512; smaller for a smoke test),
// BMC_STEP_LOAD_NOTE (what else ran on the machine, recorded with the load),
// BMC_STEP_CLOCK=cpu (1 thread each side, CPU time: a comparison a busy machine cannot skew).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report, runPython, torchAvailable } from '@bmc/bench-utils';
import * as tf from '@tensorflow/tfjs';
import { registerV1Kernels } from './layout-v1.mjs';
import { machineInfo, peakFlops, uptime } from './machine.mjs';
import { median, randomBatch, startWasm, thesisStepContext, timeReplicaSteps } from './step-setup.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const train = await import('../dist/index.js');
const engine = await import('@bmc/engine');

const SIZE = Number(process.env.BMC_STEP_SIZE ?? 512);
const BATCH = 2;
const ITERS = Number(process.env.BMC_STEP_ITERS ?? 2);
const TORCH_ITERS = Number(process.env.BMC_STEP_TORCH_ITERS ?? 2);
const BEFORE = process.env.BMC_STEP_BEFORE !== '0';
// Which engine "before" is: a0f647d's graph forms (default) or 87ab9fa's (no NCHWc, no copy-free wasm kernels;
// since 056d122 its 'taps' filter gradient is the banded one of today, which no option turns off).
const BEFORE_GEMM = process.env.BMC_STEP_BEFORE === 'gemm';
const BEFORE_WHAT = BEFORE_GEMM
  ? "'auto' without MLAS's NCHWc convolution, wasm's own Identity / Cast / Sum, banded 'taps'"
  : 'a0f647d graph forms';
const REPLICAS = Number(process.env.BMC_STEP_REPLICAS ?? 2);
const OUT = process.env.BMC_STEP_OUT ?? here('./runs/step.json');
// BMC_STEP_CLOCK=cpu: one thread on each side (onnxruntime 1 intra-op thread, PyTorch 1 thread) and each
// step timed in process CPU time, which other jobs on a shared machine do not inflate; no replicas.
const CPU_CLOCK = process.env.BMC_STEP_CLOCK === 'cpu';
const THREADS = CPU_CLOCK ? 1 : availableParallelism();

const machine = machineInfo();
const peak = peakFlops(machine);
const log = [];
const say = (s) => {
  console.log(s);
  log.push(s);
};
say(`${machine.model}, ${machine.cpus} CPUs; features ${JSON.stringify(machine.features)}`);
say(`fp32 peak ${peak.gflops.toFixed(0)} GFLOP/s: ${peak.how}`);

await startWasm('step bench');

const { config, ctx } = thesisStepContext(SIZE, 1);
const batch = randomBatch(SIZE, BATCH);
const LR = 1e-4;
const first = train.sliceBatch(batch, 0, 1);

/** Warm-up (one micro-batch: compiles the sessions), then ITERS timed steps of the whole batch. */
function timeSteps(label) {
  say(`\n${label}; load before: ${uptime()}`);
  train.trainStep(ctx, first, LR);
  const before = tf.memory().numTensors;
  const times = [];
  for (let i = 0; i < ITERS; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = train.trainStep(ctx, batch, LR);
    const c = process.cpuUsage(c0);
    times.push(CPU_CLOCK ? (c.user + c.system) / 1000 : performance.now() - t0);
    say(`  step ${i + 1}: ${times[i].toFixed(0)} ms${CPU_CLOCK ? ' CPU' : ''} (loss ${r.total.toFixed(4)})`);
  }
  const leaked = tf.memory().numTensors - before;
  const load = uptime();
  say(`  load after: ${load}; leaked tensors ${leaked}`);
  return { ms: median(times), times, leaked, loadAfter: load };
}

function torchRun() {
  if (!torchAvailable()) return null;
  const script = fileURLToPath(new URL('../../../tooling/bench/thesis_model.py', import.meta.url));
  say(
    `\nPyTorch (thesis, warm-up 1, ${TORCH_ITERS} steps${CPU_CLOCK ? ', 1 thread, CPU time' : ''}); load before: ${uptime()}`,
  );
  const py = CPU_CLOCK
    ? runPython(
        [
          'import runpy, sys, time',
          'torch.set_num_threads(1)',
          `ns = runpy.run_path(${JSON.stringify(script)})`,
          `step = ns["step_fn"](ns["Thesis"](), ${SIZE}, ${BATCH})`,
          'step()',
          'ts = []',
          `for _ in range(${TORCH_ITERS}):`,
          '    t0 = time.process_time(); step(); ts.append((time.process_time() - t0) * 1000)',
          'print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "thesis": {"ms": statistics.median(ts), "steps_ms": ts}}))',
        ].join('\n'),
        { timeoutMs: 1_800_000 },
      )
    : runPython(
        `import runpy, sys\nsys.argv = [${JSON.stringify(script)}, 'thesis', '${TORCH_ITERS}', '${SIZE}', '${BATCH}']\nrunpy.run_path(sys.argv[0], run_name='__main__')`,
        { timeoutMs: 1_800_000 },
      );
  say(
    `  PyTorch ${py.torch}, ${py.threads} threads: ${py.thesis.ms.toFixed(0)} ms (steps ${py.thesis.steps_ms.map((m) => m.toFixed(0)).join(', ')})`,
  );
  return {
    ms: py.thesis.ms,
    steps: py.thesis.steps_ms,
    torch: py.torch,
    threads: py.threads,
    loadAfter: uptime(),
  };
}

const loadStart = uptime();
const torch1 = torchRun();

let before;
if (BEFORE) {
  const h = BEFORE_GEMM
    ? engine.installEngineKernels({ backend: 'wasm', threads: THREADS, nchwc: false })
    : registerV1Kernels({ threads: THREADS });
  before = timeSteps(`ours, engine before (${BEFORE_WHAT}), onnxruntime ${THREADS} threads`);
  h.unregister();
}
// The trainer's setUpEngine registers these on wasm (replica workers get them that way).
engine.registerCopyFreeWasmKernels();
engine.installEngineKernels({ backend: 'wasm', threads: THREADS });
const after = timeSteps(`ours, engine as it is (after), onnxruntime ${THREADS} threads`);

let replicas;
if (REPLICAS > 1 && !CPU_CLOCK) {
  replicas = await timeReplicaSteps({
    ctx,
    batch,
    lr: LR,
    config,
    replicas: REPLICAS,
    iters: ITERS,
    say,
    threads: process.env.BMC_STEP_REPLICA_THREADS ? Number(process.env.BMC_STEP_REPLICA_THREADS) : undefined,
  });
  replicas.loadAfter = uptime();
  say(`  load after: ${replicas.loadAfter}`);
}
const torch2 = torchRun();
const loadEnd = uptime();

const torchRuns = [torch1, torch2].filter(Boolean);
const ref = torchRuns.length ? Math.min(...torchRuns.map((t) => t.ms)) : undefined;
const refName = `PyTorch thesis b${BATCH}${CPU_CLOCK ? ' (1 thread, CPU time)' : ''} (faster of ${torchRuns.length} runs in this run)`;
const tag = CPU_CLOCK ? ', 1 thread each side, CPU time' : '';
const rows = [];
const withRef = (r) => (ref ? { ...r, refMs: ref, ref: refName } : r);
if (before)
  rows.push(
    withRef({
      name: `thesis train step ${SIZE}x${SIZE} b${BATCH} (micro-batches of 1), engine before (${BEFORE_WHAT})${tag}`,
      ms: before.ms,
    }),
  );
rows.push(
  withRef({
    name: `thesis train step ${SIZE}x${SIZE} b${BATCH} (micro-batches of 1) (wasm + engine)${tag}`,
    ms: after.ms,
  }),
);
if (replicas)
  rows.push(
    withRef({
      name: `thesis train step ${SIZE}x${SIZE} b${BATCH}, ${replicas.replicas} data-parallel replicas (${replicas.threads} ort thread each)`,
      ms: replicas.ms,
    }),
  );
const notes = [
  `ours: warm-up 1 micro-batch, median of ${ITERS} steps; before ${before?.times.map((m) => m.toFixed(0)).join(', ') ?? '-'} ms; after ${after.times.map((m) => m.toFixed(0)).join(', ')} ms; replicas ${replicas?.times.map((m) => m.toFixed(0)).join(', ') ?? '-'} ms; leaked tensors ${before?.leaked ?? '-'} / ${after.leaked} / main ${replicas?.leakedMain ?? '-'}, workers ${replicas?.leakedWorkers.join(', ') ?? '-'}`,
  `PyTorch runs: ${torchRuns.map((t) => `${t.ms.toFixed(0)} ms (steps ${t.steps.map((m) => m.toFixed(0)).join(', ')})`).join('; ')}`,
];
report('engine-step', rows, notes);

const result = {
  suite: 'thesis-step-512-b2',
  clock: CPU_CLOCK
    ? 'process CPU time, 1 thread each side (onnxruntime 1 intra-op thread, PyTorch 1 thread)'
    : 'wall time',
  what: `Training step of the thesis preset (R50, PAN-attn N2-N5, IoU branch, OTA), 512 px, batch 2 in micro-batches of 1, against PyTorch 1.13 with the same architecture timed in the same run; the engine before (${BEFORE_WHAT}) and after in the same process`,
  command:
    'pnpm --filter @bmc/train bench:thesis-step (apps/train/bench/thesis-step.bench.mjs; reference tooling/bench/thesis_model.py)',
  date: new Date().toISOString(),
  machine: {
    cpu: machine.model,
    cores: machine.cpus,
    features: machine.features,
    mhz: machine.mhz,
    peakGflops: peak.gflops,
    nominalPeakGflops: peak.nominalGflops,
    fmaPerCore: peak.measuredPerCore,
    peakHow: peak.how,
    flags: machine.flags,
    node: process.version,
  },
  load: `uptime at start: ${loadStart}; after PyTorch: ${torch1?.loadAfter ?? '-'}; after before: ${before?.loadAfter ?? '-'}; after after: ${after.loadAfter}; after replicas: ${replicas?.loadAfter ?? '-'}; at end: ${loadEnd}. ${process.env.BMC_STEP_LOAD_NOTE ?? 'Other jobs on the machine: not recorded (BMC_STEP_LOAD_NOTE)'}`,
  env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BMC_STEP_'))),
  engine: {
    ...engine.describeEngine().onnxruntime,
    nchwcBlock: engine.nchwcBlockSize(engine.loadOrtNative()),
  },
  rows,
  notes,
  torch: torchRuns,
  before,
  after,
  replicas,
  log,
};
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(`${OUT}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
renameSync(`${OUT}.tmp`, OUT);
console.log(`\nresults: ${OUT}`);
process.exit(0);
