// One data-parallel replica (a worker thread started by ReplicaPool): the same detector as the main
// thread. Each step it loads every weight from shared memory, computes the loss and gradients of its
// share of the batch and writes the gradients into its slot of the shared gradient buffer.
import { parentPort, workerData } from 'node:worker_threads';
import { type AssignerConfig, createAssigner } from '@bmc/assigners';
import type { Anchors } from '@bmc/core';
import type { Batch } from '@bmc/data';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import { lossOptions, toDetectorConfig } from './detector.js';
import type { ReplicaInit, ReplicaReply, ReplicaStep } from './replicas.js';
import { batchLossAndGrads, type LossContext, trainableParams } from './step.js';
import { setUpEngine } from './trainer.js';

const init = workerData as ReplicaInit;
const port = parentPort!;
const config: TrainConfig = init.config;

async function main() {
  await setUpEngine(config.run, () => {}, init.threads);
  tf.env().set('IS_TEST', false);
  const detector = buildDetector(toDetectorConfig(config, init.numClasses));
  const model = detector.model;
  const weights = model.weights;
  const names = weights.map((w) => `${w.originalName}:${w.shape.join('x')}`);
  if (names.join('|') !== init.weightNames.join('|')) {
    throw new Error("replica: its model does not match the main thread's (weight names or shapes differ)");
  }
  const params = trainableParams(model);
  const variables = params.map((p) => p.variable);
  const all = new Float32Array(init.weights);
  const grads = new Float32Array(init.grads, init.slot * init.trainableSize * 4, init.trainableSize);
  const anchors = new Map<string, Anchors>();
  const ctx = (h: number, w: number): LossContext => {
    const key = `${h}x${w}`;
    if (!anchors.has(key)) anchors.set(key, detector.anchorsFor(h, w));
    return {
      model,
      assigner: createAssigner({ type: config.assigner.type, ...config.assigner.options } as AssignerConfig),
      anchors: anchors.get(key)!,
      strides: detector.strides,
      numClasses: init.numClasses,
      loss: lossOptions(config),
      microBatch: config.optim.microBatch,
    };
  };

  const loadWeights = () =>
    tf.tidy(() => {
      let o = 0;
      for (const w of weights) {
        const n = (w.shape as number[]).reduce((a, b) => a * b, 1);
        w.write(tf.tensor(all.subarray(o, o + n), w.shape as number[]));
        o += n;
      }
    });

  port.on('message', (m: ReplicaStep) => {
    try {
      const t0 = performance.now();
      loadWeights();
      const t1 = performance.now();
      const batch: Batch = { ...m.batch, ids: [], indices: [] };
      const r = batchLossAndGrads(ctx(batch.height, batch.width), batch, variables);
      let o = 0;
      for (const v of variables) {
        const g = r.grads[v.name];
        if (!g) throw new Error(`replica: no gradient for ${v.name}`);
        grads.set(g.dataSync() as Float32Array, o);
        o += v.size;
      }
      tf.dispose(r.grads);
      const reply: ReplicaReply = {
        type: 'done',
        parts: r.parts,
        assignMs: r.assignMs,
        numTensors: tf.memory().numTensors,
        loadMs: t1 - t0,
        computeMs: performance.now() - t1,
      };
      port.postMessage(reply);
    } catch (e) {
      port.postMessage({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
    }
  });
  port.postMessage({ type: 'ready' });
}

main().catch((e) => {
  port.postMessage({ type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) });
});
