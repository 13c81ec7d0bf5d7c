import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { type AssignerConfig, createAssigner } from '@bmc/assigners';
import { type BackendChoice, describeBackend, initBackend } from '@bmc/core/backend';
import type { Batch } from '@bmc/data';
import {
  describeEngine,
  fixCpuResizeNearestNeighborGrad,
  installEngineKernels,
  registerMissingWasmKernels,
} from '@bmc/engine';
import { restoreCheckpoint, saveCheckpoint, verifyCheckpoint } from '@bmc/export';
import { buildDetector, type Detector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { SingleBar } from 'cli-progress';
import { stringify as toYaml } from 'yaml';
import type { TrainConfig } from '../config/schema.js';
import { writeFileAtomic } from '../run/atomic.js';
import { JsonlLog } from '../run/jsonl-log.js';
import { checkpointDir, createRunDir, listCheckpoints, type RunPaths, runPaths } from '../run/run-dir.js';
import { evalLoader, loadSplits, type Split, trainLoader } from './data.js';
import { lossOptions, postprocessOptions, toDetectorConfig } from './detector.js';
import { type Evaluation, evaluatePredictions, predictLoader } from './evaluate.js';
import { createOptimizer } from './optimizer.js';
import { ReplicaPool, threadsPerReplica } from './replicas.js';
import { learningRate } from './schedule.js';
import { type StepResult, trainableParams, trainStep } from './step.js';

/** Where training stands; saved in every checkpoint and enough to resume exactly. */
export interface TrainState {
  step: number;
  /** Epoch in progress (0-based). */
  epoch: number;
  /** Batches of `epoch` already trained on (the loader's order is a function of seed and epoch). */
  batchInEpoch: number;
  bestAp: number;
  bestStep: number;
  badSteps: number;
}

export interface TrainOptions {
  /** Parent folder for a new run. Default `runs`. */
  runsDir?: string;
  /** Continue an existing run folder. */
  resume?: string;
  /** Print a progress bar (default: when stdout is a TTY). */
  progress?: boolean;
  /** Receives one line per notable event (default console.log). */
  log?: (line: string) => void;
  /** Stop (with a checkpoint) after this many optimizer steps in this invocation: tests. */
  maxSteps?: number;
}

export interface TrainOutcome {
  paths: RunPaths;
  state: TrainState;
  detector: Detector;
  splits: { train: Split; val: Split; test: Split };
  backend: BackendChoice;
  /** Why the loop ended. */
  stopped: 'finished' | 'time-budget' | 'max-steps' | 'non-finite-loss';
  lastEval?: Evaluation;
  peakRssMb: number;
}

export class TrainingError extends Error {
  override name = 'TrainingError';
}

/** Sets the tfjs backend and, when asked, the native convolution kernels. */
export async function setUpEngine(
  config: TrainConfig,
  log: (s: string) => void,
  /** onnxruntime threads per convolution; default all cores (data-parallel replicas split them). */
  threads?: number,
): Promise<BackendChoice> {
  const backend = await initBackend(config.run.backend === 'auto' ? {} : { preference: config.run.backend });
  log(describeBackend(backend));
  if (backend.name === 'wasm') registerMissingWasmKernels();
  if (backend.name === 'cpu') fixCpuResizeNearestNeighborGrad();
  if (config.run.nativeKernels && (backend.name === 'wasm' || backend.name === 'cpu')) {
    installEngineKernels({ backend: backend.name, ...(threads ? { threads } : {}) });
    log(`engine: ${describeEngine().summary}`);
  }
  return backend;
}

/** Newest checkpoint that verifies; a corrupt one is reported and the previous one used. */
function newestGoodCheckpoint(paths: RunPaths, log: (s: string) => void): string | undefined {
  for (const c of listCheckpoints(paths)) {
    try {
      verifyCheckpoint(c.dir);
      return c.dir;
    } catch (err) {
      log(`checkpoint ${c.dir} is unusable (${(err as Error).message}); trying the previous one`);
    }
  }
  return undefined;
}

/** Keeps the newest `keep` step checkpoints (the best one lives in its own folder). */
function pruneCheckpoints(paths: RunPaths, keep = 2): void {
  for (const c of listCheckpoints(paths).slice(keep)) rmSync(c.dir, { recursive: true, force: true });
}

/**
 * Trains a detector as the config says, in a run folder: checkpoints (atomic,
 * the last two kept plus the best by validation AP), a JSONL log, validation
 * every `run.evalEvery` epochs. `resume` continues a run at its newest
 * readable checkpoint with the same schedule and data order.
 */
export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainOutcome> {
  // The run folder must work from any directory later (eval, export, resume): record absolute data paths.
  const d = config.data;
  config = {
    ...config,
    data: {
      ...d,
      ...(d.path ? { path: resolve(d.path) } : {}),
      ...(d.valPath ? { valPath: resolve(d.valPath) } : {}),
    },
  };
  const say = options.log ?? ((s: string) => console.log(s));
  const paths = options.resume
    ? runPaths(options.resume)
    : createRunDir(options.runsDir ?? 'runs', config.name);
  if (!options.resume) writeFileAtomic(paths.config, toYaml(config));
  const log = new JsonlLog(paths.log);
  const replicas = config.run.replicas;
  const backend = await setUpEngine(config, say, replicas > 1 ? threadsPerReplica(replicas) : undefined);

  const splits = await loadSplits(config);
  const classes = splits.train.classes;
  const detector = buildDetector(toDetectorConfig(config, classes.length));
  const model = detector.model;
  const size = config.data.imageSize;
  const anchors = detector.anchorsFor(size, size);
  const assigner = createAssigner({
    type: config.assigner.type,
    ...config.assigner.options,
  } as AssignerConfig);
  const sgd = createOptimizer(config);
  const { microBatch, batchSize } = config.optim;
  if (microBatch > 0 && microBatch < batchSize) {
    say(
      `batch ${batchSize} in micro-batches of ${microBatch}` +
        (config.model.backbone.frozenBatchNorm
          ? ''
          : ' (warning: BatchNorm is not frozen, so its batch statistics come from each micro-batch, not the whole batch)'),
    );
  }
  let state: TrainState = { step: 0, epoch: 0, batchInEpoch: 0, bestAp: -1, bestStep: -1, badSteps: 0 };

  if (options.resume) {
    const dir = newestGoodCheckpoint(paths, say);
    if (!dir)
      throw new TrainingError(`--resume ${paths.root}: no readable checkpoint in ${paths.checkpoints}`);
    const restored = await restoreCheckpoint(dir, model);
    if (restored.optimizer) {
      sgd.load(restored.optimizer.slots, trainableParams(model));
      sgd.loadCounters(
        (restored.optimizer.config as { counters?: Record<string, number> } | undefined)?.counters,
      );
      tf.dispose(Object.values(restored.optimizer.slots));
    }
    state = restored.state?.train as TrainState;
    say(`resumed from ${dir} at step ${state.step} (epoch ${state.epoch + 1}, batch ${state.batchInEpoch})`);
    log.write({ event: 'resume', checkpoint: dir, ...state });
  } else {
    log.write({ event: 'start', config, backend: backend.name, classes, anchors: anchors.boxes.length / 4 });
  }

  const saveState = async (dir: string) => {
    await saveCheckpoint(dir, {
      model,
      state: { step: state.step, epoch: state.epoch, train: { ...state }, config },
      optimizer: { slots: sgd.state(), config: { ...sgd.options, counters: sgd.counters() } },
    });
  };
  const checkpoint = async () => {
    await saveState(checkpointDir(paths, state.step));
    pruneCheckpoints(paths);
    log.write({
      event: 'checkpoint',
      step: state.step,
      epoch: state.epoch,
      batchInEpoch: state.batchInEpoch,
    });
  };

  const loader = trainLoader(config, splits.train, config.run.seed);
  const stepsPerEpoch = loader.length;
  const totalSteps = stepsPerEpoch * config.optim.epochs;
  const schedule = { ...config.optim };
  const ctx = {
    model,
    assigner,
    anchors,
    strides: detector.strides,
    numClasses: classes.length,
    loss: lossOptions(config),
    optimizer: sgd,
    clipGradNorm: config.optim.clipGradNorm,
    microBatch: config.optim.microBatch,
  };
  const started = performance.now();
  const budgetMs = config.run.timeBudgetMin * 60_000;
  const showBar = options.progress ?? Boolean(process.stdout.isTTY);
  const bar = showBar
    ? new SingleBar({
        format:
          'epoch {epoch} |{bar}| {value}/{total} steps | ETA {eta_formatted} | loss {loss} (cls {cls} box {box} iou {iou}) | lr {lr} | {ips} img/s',
        hideCursor: true,
      })
    : undefined;
  bar?.start(totalSteps, state.step, {
    epoch: state.epoch + 1,
    loss: '-',
    cls: '-',
    box: '-',
    iou: '-',
    lr: '-',
    ips: '-',
  });
  let stopped: TrainOutcome['stopped'] = 'finished';
  let stepsThisRun = 0;
  let peakRss = process.memoryUsage().rss;
  let lastEval: Evaluation | undefined;

  const validate = async (): Promise<Evaluation> => {
    const preds = await predictLoader(
      model,
      evalLoader(config, splits.val),
      detector.anchorsFor,
      classes.length,
      classes,
      postprocessOptions(config),
    );
    const ev = evaluatePredictions(preds, `${config.name}: validation`);
    const ap = ev.result.stats[0]!;
    const ap50 = ev.result.stats[1]!;
    log.write({
      event: 'eval',
      split: 'val',
      step: state.step,
      epoch: state.epoch,
      AP: ap,
      AP50: ap50,
      AP75: ev.result.stats[2],
    });
    say(
      `validation after epoch ${state.epoch}: AP ${ap.toFixed(4)}  AP50 ${ap50.toFixed(4)}  AP75 ${ev.result.stats[2]!.toFixed(4)}`,
    );
    if (ap > state.bestAp) {
      state.bestAp = ap;
      state.bestStep = state.step;
      await saveState(paths.best);
      log.write({ event: 'best', step: state.step, AP: ap });
    }
    return ev;
  };

  let pool: ReplicaPool | undefined;
  if (replicas > 1 && (backend.name === 'wasm' || backend.name === 'cpu')) {
    pool = await ReplicaPool.start(model, { config, numClasses: classes.length, replicas });
    say(
      `data-parallel: ${pool.size} replicas (worker threads), ${threadsPerReplica(replicas)} onnxruntime thread(s) each`,
    );
  } else if (replicas > 1) {
    say(
      `run.replicas ${replicas} ignored: data-parallel replicas are for the wasm and cpu backends (this is ${backend.name})`,
    );
  }

  try {
    outer: while (state.epoch < config.optim.epochs) {
      const t0 = performance.now();
      let images = 0;
      let b = 0;
      for await (const batch of loader.epoch(state.epoch)) {
        if (b++ < state.batchInEpoch) continue; // already trained on before the resume
        const lr = learningRate(schedule, state.step, state.epoch);
        const r: StepResult = pool
          ? await pool.step(ctx, batch as Batch, lr)
          : trainStep(ctx, batch as Batch, lr);
        images += batch.batchSize;
        if (!r.finite) {
          state.badSteps++;
          log.write({ event: 'non-finite-loss', step: state.step, ...r });
          say(
            `warning: step ${state.step}: loss ${r.total}, gradient norm ${r.gradNorm}: step skipped (${state.badSteps} in a row)`,
          );
          if (state.badSteps >= config.run.maxBadSteps) {
            stopped = 'non-finite-loss';
            break outer;
          }
        } else {
          state.badSteps = 0;
        }
        state.step++;
        state.batchInEpoch++;
        stepsThisRun++;
        const ips = images / ((performance.now() - t0) / 1000);
        log.write({
          event: 'step',
          step: state.step,
          epoch: state.epoch,
          lr,
          loss: r.total,
          cls: r.cls,
          box: r.box,
          iou: r.iou,
          pos: r.numPositives,
          gradNorm: r.gradNorm,
          assignMs: Math.round(r.assignMs),
          imagesPerSecond: ips,
        });
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        bar?.update(state.step, {
          epoch: state.epoch + 1,
          loss: r.total.toFixed(3),
          cls: r.cls.toFixed(3),
          box: r.box.toFixed(3),
          iou: r.iou.toFixed(3),
          lr: lr.toExponential(1),
          ips: ips.toFixed(1),
        });
        if (config.run.checkpointEvery > 0 && state.step % config.run.checkpointEvery === 0)
          await checkpoint();
        if (options.maxSteps !== undefined && stepsThisRun >= options.maxSteps) {
          stopped = 'max-steps';
          break outer;
        }
        if (budgetMs > 0 && performance.now() - started > budgetMs) {
          stopped = 'time-budget';
          break outer;
        }
      }
      state.epoch++;
      state.batchInEpoch = 0;
      const evalNow = config.run.evalEvery > 0 && state.epoch % config.run.evalEvery === 0;
      if (evalNow || state.epoch === config.optim.epochs) lastEval = await validate();
      await checkpoint();
    }
  } finally {
    await pool?.close();
  }
  bar?.stop();
  if (stopped !== 'finished') {
    await checkpoint();
    say(
      `training stopped (${stopped}) at step ${state.step}; continue with: bmc train --resume ${paths.root}`,
    );
  }
  log.write({
    event: 'stop',
    reason: stopped,
    step: state.step,
    seconds: (performance.now() - started) / 1000,
  });
  sgd.dispose();
  if (stopped === 'non-finite-loss') {
    throw new TrainingError(
      `loss was not finite for ${state.badSteps} steps in a row (last at step ${state.step}); ` +
        `the last good weights are in ${paths.checkpoints}. Lower optim.lr or raise optim.warmupIters.`,
    );
  }
  return {
    paths,
    state,
    detector,
    splits,
    backend,
    stopped,
    ...(lastEval ? { lastEval } : {}),
    peakRssMb: peakRss / 2 ** 20,
  };
}
