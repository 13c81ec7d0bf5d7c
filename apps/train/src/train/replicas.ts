import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Batch } from '@bmc/data';
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import { GradientSum } from './gradient-sum.js';
import {
  applyGradients,
  batchLossAndGrads,
  combineShares,
  type LossParts,
  type StepContext,
  type StepResult,
  shareWeight,
  sliceBatch,
  snapshotNonTrainable,
  trainableParams,
} from './step.js';

/** What a replica worker is started with (structured-cloned; the buffers are shared). */
export interface ReplicaInit {
  config: TrainConfig;
  numClasses: number;
  /** onnxruntime threads per convolution in the replica. */
  threads: number;
  /** `name:shape` of every model weight, in `model.weights` order: the replica checks its model against it. */
  weightNames: string[];
  /** Every weight, float32, concatenated in `model.weights` order; written by the main thread. */
  weights: SharedArrayBuffer;
  /** One slot of `trainableSize` float32 per worker: its share's gradients, in trainable-weight order. */
  grads: SharedArrayBuffer;
  slot: number;
  trainableSize: number;
}

export interface ReplicaStep {
  batch: Omit<Batch, 'ids' | 'indices'>;
}

export type ReplicaReply =
  | { type: 'ready' }
  | {
      type: 'done';
      parts: LossParts;
      assignMs: number;
      numTensors: number;
      loadMs: number;
      computeMs: number;
    }
  | { type: 'error'; message: string };

export interface ReplicaPhases {
  /** Main model's weights into shared memory. */
  publishMs: number;
  /** Replica 0's share on the main thread. */
  ownMs: number;
  /** Waiting for the workers after the main thread's share. */
  waitMs: number;
  /** Summing the shares' gradients. */
  combineMs: number;
  /** Clipping and the optimizer. */
  applyMs: number;
  workerLoadMs: number[];
  workerComputeMs: number[];
}

export interface ReplicaPoolOptions {
  config: TrainConfig;
  numClasses: number;
  /** Replicas including the main thread; 2 or more. */
  replicas: number;
  /** onnxruntime threads per replica (default: the cores divided among the replicas). */
  threads?: number;
}

/** onnxruntime threads per replica when `replicas` share this machine's cores. */
export function threadsPerReplica(replicas: number): number {
  return Math.max(1, Math.floor(availableParallelism() / Math.max(1, replicas)));
}

/**
 * Data-parallel training on one machine: the main thread is replica 0 and owns the model and the
 * optimizer; each worker thread holds an identical detector. A step splits the batch into one share per
 * replica, every replica computes its share's loss and gradients at the same time (workers write theirs
 * into shared memory), the main thread combines them with the same weights as micro-batches (so the
 * result equals the whole batch's, to float rounding), clips, steps the optimizer, and every replica
 * loads the new weights from shared memory before its next share. Why: tfjs-wasm runs one thread, so a
 * second replica is the way to use the second core for the work between convolutions.
 */
export class ReplicaPool {
  private constructor(
    private readonly model: tf.LayersModel,
    private readonly workers: Worker[],
    private readonly weights: Float32Array,
    private readonly grads: Float32Array[],
    /** numTensors each worker reported after its last step. */
    readonly workerTensors: number[],
  ) {}

  /** Where the last step's time went (ms), for benchmarks: the serial parts are what replicas cannot hide. */
  lastPhases: ReplicaPhases | undefined;

  get size(): number {
    return this.workers.length + 1;
  }

  static async start(model: tf.LayersModel, options: ReplicaPoolOptions): Promise<ReplicaPool> {
    if (!(Number.isInteger(options.replicas) && options.replicas >= 2)) {
      throw new RangeError(`ReplicaPool: replicas must be an integer >= 2, got ${options.replicas}`);
    }
    const weightNames = model.weights.map((w) => `${w.originalName}:${w.shape.join('x')}`);
    const totalSize = model.weights.reduce(
      (s, w) => s + w.shape.reduce((a: number, b) => a * (b ?? 1), 1),
      0,
    );
    const trainableSize = trainableParams(model).reduce((s, p) => s + p.variable.size, 0);
    const n = options.replicas - 1;
    const weights = new SharedArrayBuffer(totalSize * 4);
    const grads = new SharedArrayBuffer(n * trainableSize * 4);
    const threads = options.threads ?? threadsPerReplica(options.replicas);
    const url = workerUrl();
    const workers = Array.from({ length: n }, (_, slot) => {
      const init: ReplicaInit = {
        config: options.config,
        numClasses: options.numClasses,
        threads,
        weightNames,
        weights,
        grads,
        slot,
        trainableSize,
      };
      return new Worker(url, { workerData: init });
    });
    const pool = new ReplicaPool(
      model,
      workers,
      new Float32Array(weights),
      Array.from(
        { length: n },
        (_, slot) => new Float32Array(grads, slot * trainableSize * 4, trainableSize),
      ),
      new Array(n).fill(0),
    );
    try {
      await Promise.all(workers.map((w) => reply(w, 'ready')));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  /**
   * One optimizer step over the replicas; the same contract as trainStep (a non-finite loss changes
   * nothing; no tensors are left behind on any thread).
   */
  async step(ctx: StepContext, batch: Batch, lr: number): Promise<StepResult> {
    const t0 = performance.now();
    this.publishWeights();
    const t1 = performance.now();
    const shares = splitShares(batch.batchSize, this.size);
    const pending = this.workers.slice(0, shares.length - 1).map((w, i) => {
      const [from, to] = shares[i + 1]!;
      const part = sliceBatch(batch, from, to);
      const msg: ReplicaStep = {
        batch: {
          images: part.images.slice(),
          batchSize: part.batchSize,
          width: part.width,
          height: part.height,
          boxes: part.boxes,
          labels: part.labels,
        },
      };
      const done = reply(w, 'done');
      w.postMessage(msg);
      return done;
    });
    // Replica 0's share runs here while the workers run theirs.
    const params = trainableParams(this.model);
    const state = snapshotNonTrainable(this.model);
    const [from0, to0] = shares[0]!;
    let own: ReturnType<typeof batchLossAndGrads>;
    try {
      own = batchLossAndGrads(
        ctx,
        sliceBatch(batch, from0, to0),
        params.map((p) => p.variable),
      );
    } catch (e) {
      await Promise.allSettled(pending);
      state.restore();
      throw e;
    }
    const t2 = performance.now();
    let results: Extract<ReplicaReply, { type: 'done' }>[];
    try {
      results = (await Promise.all(pending)) as Extract<ReplicaReply, { type: 'done' }>[];
    } catch (e) {
      tf.dispose(own.grads);
      state.restore();
      throw e;
    }
    results.forEach((r, i) => {
      this.workerTensors[i] = r.numTensors;
    });
    const weighted = [
      { parts: own.parts, weight: shareWeight(ctx, to0 - from0, own.parts.numPositives) },
      ...results.map((r, i) => ({
        parts: r.parts,
        weight: shareWeight(ctx, shares[i + 1]![1] - shares[i + 1]![0], r.parts.numPositives),
      })),
    ];
    const t3 = performance.now();
    const { parts, denom } = combineShares(weighted);
    // The denominator is known before summing here, so each share's weight is divided by it up front.
    const sum = new GradientSum(params.map((p) => p.variable));
    try {
      sum.add(own.grads, weighted[0]!.weight / denom);
    } finally {
      tf.dispose(own.grads);
    }
    results.forEach((_, r) => {
      sum.addFlat(this.grads[r]!, weighted[r + 1]!.weight / denom);
    });
    const grads = sum.toTensors(1);
    const assignMs = Math.max(own.assignMs, ...results.map((r) => r.assignMs));
    const t4 = performance.now();
    const r = applyGradients(ctx, params, { parts, grads, assignMs }, lr);
    if (r.finite) state.discard();
    else state.restore();
    const t5 = performance.now();
    this.lastPhases = {
      publishMs: t1 - t0,
      ownMs: t2 - t1,
      waitMs: t3 - t2,
      combineMs: t4 - t3,
      applyMs: t5 - t4,
      workerLoadMs: results.map((x) => x.loadMs),
      workerComputeMs: results.map((x) => x.computeMs),
    };
    return r;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  /** The main model's weights into shared memory, where the replicas read them. */
  private publishWeights(): void {
    let o = 0;
    for (const w of this.model.weights) {
      const v = w.read().dataSync() as Float32Array;
      this.weights.set(v, o);
      o += v.length;
    }
  }
}

/**
 * The built worker entry (dist/replica-worker.js, beside the bundle that runs this). From the TypeScript
 * sources (tests) the worker still has to be the built file: worker threads cannot load .ts.
 */
function workerUrl(): URL {
  const beside = new URL('./replica-worker.js', import.meta.url);
  if (existsSync(beside)) return beside;
  const built = new URL('../../dist/replica-worker.js', import.meta.url);
  if (existsSync(built)) return built;
  throw new Error(
    `ReplicaPool: worker script not found at ${beside.pathname} or ${built.pathname}; build @bmc/train first`,
  );
}

/** `[from, to)` of each replica's share: as even as possible, the first replicas one image larger. */
export function splitShares(batchSize: number, replicas: number): [number, number][] {
  const r = Math.min(replicas, batchSize);
  const base = Math.floor(batchSize / r);
  const extra = batchSize % r;
  const out: [number, number][] = [];
  let from = 0;
  for (let i = 0; i < r; i++) {
    const to = from + base + (i < extra ? 1 : 0);
    out.push([from, to]);
    from = to;
  }
  return out;
}

/** The worker's next reply of `type`; rejects on its error reply, an uncaught error or its exit. */
function reply(w: Worker, type: 'ready' | 'done'): Promise<ReplicaReply> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
    };
    const onMessage = (m: ReplicaReply) => {
      if (m.type === 'error') {
        cleanup();
        reject(new Error(`replica worker failed: ${m.message}`));
      } else if (m.type === type) {
        cleanup();
        resolve(m);
      }
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new Error(`replica worker crashed: ${e.message}`));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new Error(`replica worker exited (code ${code}) before replying`));
    };
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
  });
}
