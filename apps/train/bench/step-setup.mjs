// What the training-step benches (detector-step, thesis-step, step-profile) share: tfjs-wasm with
// the kernels it lacks, the thesis preset's detector with the trainer's step context, a fixed
// random batch, and data-parallel replicas timed on that batch.
import { createAssigner } from '@bmc/assigners';
import { initBackend } from '@bmc/core/backend';
import { installEngineKernels, registerMissingWasmKernels } from '@bmc/engine';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import {
  createOptimizer,
  loadConfig,
  lossOptions,
  ReplicaPool,
  threadsPerReplica,
  toDetectorConfig,
} from '../dist/index.js';
import { uptime } from './machine.mjs';

/** The wasm backend (or an error naming `bench`), with the kernels tfjs-wasm lacks registered. */
export async function startWasm(bench) {
  const backend = await initBackend({ preference: 'wasm' });
  if (backend.name !== 'wasm') throw new Error(`${bench}: wanted wasm, got ${backend.name}`);
  registerMissingWasmKernels();
  tf.env().set('IS_TEST', false);
  return backend;
}

/**
 * The thesis preset's detector (the trainer's own model, what replicas build too) and a step
 * context for it at `size` px: one class, OTA, the preset's loss, optimizer and clipping.
 */
export function thesisStepContext(size, microBatch) {
  const config = loadConfig({ preset: 'thesis' });
  const detector = buildDetector(toDetectorConfig(config, 1));
  const ctx = {
    model: detector.model,
    assigner: createAssigner({ type: 'ota' }),
    anchors: detector.anchorsFor(size, size),
    strides: detector.strides,
    numClasses: 1,
    loss: lossOptions(config),
    optimizer: createOptimizer(config),
    clipGradNorm: config.optim.clipGradNorm,
    microBatch,
  };
  return { config, detector, ctx };
}

/**
 * `batchSize` images of random pixels in [-1, 1) at `size` px with 3 random GT boxes each, from a
 * fixed seed: the same batch every step, variant and run.
 */
export function randomBatch(size, batchSize) {
  let seed = 1;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const images = new Float32Array(batchSize * size * size * 3).map(() => rand() * 2 - 1);
  const boxes = [];
  for (let b = 0; b < batchSize; b++) {
    const bx = new Float32Array(12);
    for (let g = 0; g < 3; g++) {
      const w = 32 + rand() * 160;
      const h = 32 + rand() * 160;
      const x = rand() * (size - w);
      const y = rand() * (size - h);
      bx.set([x, y, x + w, y + h], g * 4);
    }
    boxes.push(bx);
  }
  return {
    images,
    batchSize,
    width: size,
    height: size,
    boxes,
    labels: boxes.map(() => new Int32Array(3)),
    ids: boxes.map((_, i) => i),
    indices: boxes.map((_, i) => i),
  };
}

/** The middle value (the upper one of an even count). */
export const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];

/**
 * `iters` steps of `batch` split across `replicas` data-parallel workers (ReplicaPool) after one
 * warm-up step, with the tensors each side leaked; `say` gets the progress lines. The engine
 * kernels are reinstalled with the onnxruntime threads shared out among the replicas, and keep that
 * count; the pool is closed before this returns.
 */
export async function timeReplicaSteps({
  ctx,
  batch,
  lr,
  config,
  replicas,
  iters,
  say,
  threads: perReplica,
}) {
  const threads = perReplica ?? threadsPerReplica(replicas);
  installEngineKernels({ backend: 'wasm', threads });
  const pool = await ReplicaPool.start(ctx.model, { config, numClasses: 1, replicas, threads });
  say(`\n${pool.size} replicas, ${threads} onnxruntime thread(s) each; load before: ${uptime()}`);
  await pool.step(ctx, batch, lr);
  const mainBefore = tf.memory().numTensors;
  const workerBefore = [...pool.workerTensors];
  const times = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const r = await pool.step(ctx, batch, lr);
    times.push(performance.now() - t0);
    const ph = pool.lastPhases;
    say(
      `  replicas step ${i + 1}: ${times[i].toFixed(0)} ms (loss ${r.total.toFixed(4)}, ${r.numPositives} positives); ` +
        `publish ${ph.publishMs.toFixed(0)}, main share ${ph.ownMs.toFixed(0)}, wait ${ph.waitMs.toFixed(0)}, ` +
        `sum ${ph.combineMs.toFixed(0)}, clip + optimizer ${ph.applyMs.toFixed(0)} ms; worker load ` +
        `${ph.workerLoadMs.map((x) => x.toFixed(0)).join('/')}, share ${ph.workerComputeMs.map((x) => x.toFixed(0)).join('/')} ms`,
    );
  }
  const result = {
    replicas: pool.size,
    threads,
    ms: median(times),
    times,
    leakedMain: tf.memory().numTensors - mainBefore,
    leakedWorkers: pool.workerTensors.map((n, i) => n - workerBefore[i]),
  };
  await pool.close();
  return result;
}
