// Memory of one training step of one micro-batch (forward, backward, optimizer) on tfjs-wasm with the engine kernels:
// peak bytes of live tfjs tensors (tf.profile's peakBytes) and the size the wasm heap grew to (it grows
// to the peak and never shrinks; its limit is 4 GiB). Each configuration runs in its own child process
// (a heap that grew in one run would hide the next one's peak), 'tfjs' (tfjs' own model.apply +
// tf.variableGrads: the reference) and 'lean' (apps/train's default, see src/train/memory-plan.ts) in the
// same run, and reports lean / tfjs. Run after the workspace is built: `pnpm --filter @bmc/train
// bench:memory`. Env: BMC_MEM_PRESET (thesis), BMC_MEM_SIZES (comma list, 512), BMC_MEM_MICRO (1),
// BMC_MEM_MODES (tfjs,lean), BMC_MEM_OUT (a JSON file to write as well, e.g. bench/measured/...).
// Slow for the thesis preset: about a minute per configuration on 2 cores.
import { execFileSync, execSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);

async function child(mode, preset, size, micro) {
  const { createAssigner } = await import('@bmc/assigners');
  const { initBackend } = await import('@bmc/core/backend');
  const { installEngineKernels, registerMissingWasmKernels } = await import('@bmc/engine');
  const { buildDetector } = await import('@bmc/heads-iou');
  const tf = await import('@tensorflow/tfjs');
  const { createOptimizer, loadConfig, lossOptions, toDetectorConfig, trainableParams, trainStep } =
    await import('../dist/index.js');
  const backend = await initBackend({ preference: 'wasm' });
  if (backend.name !== 'wasm') throw new Error(`memory bench: wanted wasm, got ${backend.name}`);
  registerMissingWasmKernels();
  installEngineKernels({ backend: 'wasm' });
  tf.env().set('IS_TEST', false);
  const heap = () => tf.backend().wasm.HEAPU8.buffer.byteLength;
  const config = loadConfig({ preset });
  const detector = buildDetector(toDetectorConfig(config, 1));
  const ctx = {
    model: detector.model,
    assigner: createAssigner({ type: config.assigner.type, ...config.assigner.options }),
    anchors: detector.anchorsFor(size, size),
    strides: detector.strides,
    numClasses: 1,
    loss: lossOptions(config),
    optimizer: createOptimizer(config),
    clipGradNorm: config.optim.clipGradNorm,
    microBatch: micro,
    memory: mode,
  };
  let seed = 1;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const images = new Float32Array(micro * size * size * 3).map(() => rand() * 2 - 1);
  const boxes = [];
  for (let b = 0; b < micro; b++) {
    const bx = new Float32Array(12);
    for (let g = 0; g < 3; g++) {
      const w = size / 16 + (rand() * size) / 4;
      const x = rand() * (size - w);
      const y = rand() * (size - w);
      bx.set([x, y, x + w, y + w], g * 4);
    }
    boxes.push(bx);
  }
  const batch = {
    images,
    batchSize: micro,
    width: size,
    height: size,
    boxes,
    labels: boxes.map(() => new Int32Array(3)),
    ids: boxes.map((_, i) => i),
    indices: boxes.map((_, i) => i),
  };
  const before = { heap: heap(), bytes: tf.memory().numBytes, tensors: tf.memory().numTensors };
  const t0 = performance.now();
  // One whole optimizer step (forward, backward, clipping, optimizer: its state is created here).
  const profile = await tf.profile(() => {
    trainStep(ctx, batch, 1e-4);
  });
  const ms = performance.now() - t0;
  const after = tf.memory();
  return {
    mode,
    preset,
    size,
    micro,
    ms: Math.round(ms),
    heapBeforeBytes: before.heap,
    heapAfterBytes: heap(),
    weightBytes: before.bytes,
    peakTensorBytes: profile.peakBytes,
    optimizerStateTensors: after.numTensors - before.tensors,
    params: trainableParams(ctx.model).length,
  };
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  const [mode, preset, size, micro] = args.slice(1);
  const r = await child(mode, preset, Number(size), Number(micro));
  console.log(`RESULT ${JSON.stringify(r)}`);
  process.exit(0);
}

const sh = (cmd) => {
  try {
    return execSync(cmd, { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};
const lscpu = sh('lscpu');
const cpuModel = /Model name:\s*(.*)/.exec(lscpu)?.[1] ?? 'unknown';
const cpuFlags = /Flags:\s*(.*)/.exec(lscpu)?.[1] ?? '';
const preset = process.env.BMC_MEM_PRESET ?? 'thesis';
const sizes = (process.env.BMC_MEM_SIZES ?? '512').split(',').map(Number);
const micro = Number(process.env.BMC_MEM_MICRO ?? 1);
const modes = (process.env.BMC_MEM_MODES ?? 'tfjs,lean').split(',');
const GiB = 2 ** 30;
const results = [];
const loads = [];
for (const size of sizes) {
  for (const mode of modes) {
    loads.push(`${mode} ${size}: ${sh('uptime') || `loadavg ${loadavg().map((l) => l.toFixed(2))}`}`);
    let out;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          out = execFileSync(process.execPath, [self, '--child', mode, preset, String(size), String(micro)], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
            maxBuffer: 1 << 26,
          });
          break;
        } catch (e) {
          // A workspace package being rebuilt at that moment (its dist briefly missing): try again.
          if (attempt < 6 && /ERR_MODULE_NOT_FOUND/.test(String(e.stderr))) {
            execSync('sleep 20');
            continue;
          }
          throw e;
        }
      }
    } catch (e) {
      // The tfjs reference can abort the wasm module (4 GiB) where the lean mode fits: record that.
      results.push({ mode, preset, size, micro, failed: String(e.stderr ?? e.message).slice(-300) });
      console.log(`${preset} ${size} ${mode}: failed`);
      continue;
    }
    const line = out.split('\n').find((l) => l.startsWith('RESULT '));
    const r = JSON.parse(line.slice(7));
    results.push(r);
    console.log(
      `${preset} ${size}px x${micro} ${mode}: heap ${(r.heapAfterBytes / GiB).toFixed(3)} GiB ` +
        `(before the step ${(r.heapBeforeBytes / GiB).toFixed(3)}), peak tensors ${(r.peakTensorBytes / GiB).toFixed(3)} GiB ` +
        `(weights ${(r.weightBytes / GiB).toFixed(3)}), ${r.ms} ms, new tensors ${r.optimizerStateTensors} (optimizer state for ${r.params} parameters)`,
    );
  }
  const ref = results.find((r) => r.size === size && r.mode === 'tfjs' && !r.failed);
  const lean = results.find((r) => r.size === size && r.mode === 'lean' && !r.failed);
  if (ref && lean) {
    const perImage = (r) => (r.heapAfterBytes - r.heapBeforeBytes) / micro;
    console.log(
      `${preset} ${size}px: heap growth per image lean / tfjs = ${(perImage(lean) / GiB).toFixed(3)} / ${(perImage(ref) / GiB).toFixed(3)} GiB = ${(perImage(lean) / perImage(ref)).toFixed(3)}; ` +
        `peak tensor bytes lean / tfjs = ${(lean.peakTensorBytes / ref.peakTensorBytes).toFixed(3)}`,
    );
  }
}
const record = {
  suite: 'train-memory',
  date: new Date().toISOString(),
  command: `BMC_MEM_PRESET=${preset} BMC_MEM_SIZES=${sizes.join(',')} BMC_MEM_MICRO=${micro} BMC_MEM_MODES=${modes.join(',')} node apps/train/bench/memory.bench.mjs`,
  cpu: { model: cpuModel, flags: cpuFlags, cores: sh('nproc') },
  load: loads,
  results,
};
const outs = [resolve(dirname(self), '../../../runs/bench/train-memory.json')];
if (process.env.BMC_MEM_OUT) outs.push(resolve(process.env.BMC_MEM_OUT));
for (const file of outs) {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, file);
}
