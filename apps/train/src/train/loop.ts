import type { Batch, BatchLoader } from '@bmc/data';
import type { TrainConfig } from '../config/schema.js';
import type { JsonlLog } from '../run/jsonl-log.js';
import type { CheckpointWriter } from './checkpoints.js';
import type { Evaluation } from './evaluate.js';
import { TrainProgress } from './progress.js';
import type { ReplicaPool } from './replicas.js';
import { type LrSchedule, learningRate } from './schedule.js';
import type { StopReason, TrainState } from './state.js';
import { type StepContext, type StepResult, trainStep } from './step.js';
import type { Validator } from './validation.js';

/** Where any task's training stands: the loop's part of a train state (saved in checkpoints, enough to resume). */
export interface LoopState {
  step: number;
  /** Epoch in progress (0-based). */
  epoch: number;
  /** Batches of `epoch` already trained on (a task's batch order is a function of its seed and the epoch). */
  batchInEpoch: number;
  /** Non-finite steps in a row. */
  badSteps: number;
}

/** What every task's optimizer step reports to the loop. */
export interface LoopStepResult {
  /** False when the loss (or gradient norm) was NaN/Inf: no weight was changed. */
  finite: boolean;
  total: number;
  gradNorm: number;
}

/**
 * A training task plugged into the shared loop: the detector (below) and the cell-type classifier
 * (`../classify/`) differ only in their batches, their step and what they log of it; the schedule,
 * non-finite handling, checkpoints, validation, time budget, step limit and stop signal are the loop's.
 */
export interface TrainTask<B, R extends LoopStepResult, E, S extends LoopState> {
  /** Batches per epoch (the progress bar's length). */
  readonly batchesPerEpoch: number;
  /**
   * The batches of an epoch. Their order must depend only on the epoch (and the run's seed): a resumed
   * run skips the first `batchInEpoch` of them, so a batch should be cheap until `step` uses it.
   */
  epoch(epoch: number): AsyncIterable<B>;
  /** Samples (images, crops) in a batch, for the throughput figure. */
  samples(batch: B): number;
  /** One optimizer step; a non-finite result must have changed nothing. */
  step(batch: B, lr: number): R | Promise<R>;
  /** The step record's task fields, written between `loss` and `imagesPerSecond` in log.jsonl. */
  stepLog(r: R): Record<string, unknown>;
  /** The progress bar's loss parts, e.g. ` (cls 0.1 box 0.2)`. */
  progressDetail(r: R): string;
  /** Validation of the current weights (may replace `best/`). */
  validate(state: S): Promise<E>;
  /** A step checkpoint of the current weights, optimizer and state. */
  checkpoint(state: S): Promise<void>;
}

/** The schedule and limits of a run, whatever the task. */
export interface TaskLoopConfig {
  epochs: number;
  schedule: LrSchedule;
  /** Validate every this many epochs (0 = only at the end). */
  evalEvery: number;
  /** Step checkpoint every this many steps (0 = at epoch ends only). */
  checkpointEvery: number;
  /** Stop after this many non-finite steps in a row. */
  maxBadSteps: number;
  /** Stop after this many minutes (0 = no limit). */
  timeBudgetMin: number;
}

export interface LoopLimits {
  /** Stop after this many optimizer steps in this invocation. */
  maxSteps?: number;
  /** Stop cleanly after the current step once aborted. */
  signal?: AbortSignal;
  progress: boolean;
}

export interface TaskLoopResult<E> {
  stopped: StopReason;
  lastEval?: E;
  peakRss: number;
}

/**
 * The training loop: epochs of optimizer steps from where `state` stands, a
 * non-finite step skipped (and the run stopped after `maxBadSteps` in a
 * row), step checkpoints every `checkpointEvery` steps, validation every
 * `evalEvery` epochs and a checkpoint at each epoch end. Ends early on
 * the time budget, `maxSteps` or the abort signal; the caller finishes the run.
 */
export async function runTaskLoop<B, R extends LoopStepResult, E, S extends LoopState>(
  config: TaskLoopConfig,
  task: TrainTask<B, R, E, S>,
  io: { state: S; log: JsonlLog; say: (line: string) => void },
  limits: LoopLimits,
): Promise<TaskLoopResult<E>> {
  const { state, log, say } = io;
  const progress = new TrainProgress(
    limits.progress,
    task.batchesPerEpoch * config.epochs,
    state.step,
    state.epoch,
  );
  const started = performance.now();
  const budgetMs = config.timeBudgetMin * 60_000;
  let stepsThisRun = 0;
  let peakRss = process.memoryUsage().rss;
  let lastEval: E | undefined;
  const stopReason = (): StopReason | undefined => {
    if (limits.signal?.aborted) return 'signal';
    if (limits.maxSteps !== undefined && stepsThisRun >= limits.maxSteps) return 'max-steps';
    if (budgetMs > 0 && performance.now() - started > budgetMs) return 'time-budget';
    return undefined;
  };
  const result = (stopped: StopReason): TaskLoopResult<E> => ({
    stopped,
    peakRss,
    ...(lastEval !== undefined ? { lastEval } : {}),
  });

  try {
    while (state.epoch < config.epochs) {
      const t0 = performance.now();
      let images = 0;
      let b = 0;
      for await (const batch of task.epoch(state.epoch)) {
        if (b++ < state.batchInEpoch) continue; // already trained on before the resume
        const lr = learningRate(config.schedule, state.step, state.epoch);
        const r = await task.step(batch, lr);
        images += task.samples(batch);
        if (!r.finite) {
          state.badSteps++;
          log.write({ event: 'non-finite-loss', step: state.step, ...(r as object) });
          say(
            `warning: step ${state.step}: loss ${r.total}, gradient norm ${r.gradNorm}: step skipped (${state.badSteps} in a row)`,
          );
          if (state.badSteps >= config.maxBadSteps) return result('non-finite-loss');
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
          ...task.stepLog(r),
          imagesPerSecond: ips,
        });
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
        progress.update(state.step, state.epoch, r.total, task.progressDetail(r), lr, ips);
        if (config.checkpointEvery > 0 && state.step % config.checkpointEvery === 0)
          await task.checkpoint(state);
        const stop = stopReason();
        if (stop) return result(stop);
      }
      state.epoch++;
      state.batchInEpoch = 0;
      const evalNow = config.evalEvery > 0 && state.epoch % config.evalEvery === 0;
      if (evalNow || state.epoch === config.epochs) lastEval = await task.validate(state);
      await task.checkpoint(state);
    }
    return result('finished');
  } finally {
    progress.stop();
  }
}

/** What the detector's loop reads of the config: the schedule and the run's limits. */
export interface LoopConfig {
  optim: TrainConfig['optim'];
  run: Pick<TrainConfig['run'], 'evalEvery' | 'checkpointEvery' | 'maxBadSteps' | 'timeBudgetMin'>;
}

export interface LoopParts {
  state: TrainState;
  step: StepContext;
  loader: BatchLoader;
  checkpoints: CheckpointWriter;
  validator: Validator;
  log: JsonlLog;
  say: (line: string) => void;
  pool?: ReplicaPool;
}

export type LoopResult = TaskLoopResult<Evaluation>;

/** The detector as a task of the shared loop: detection batches, `trainStep` (or the replicas), COCO validation. */
export function detectorTask(parts: LoopParts): TrainTask<Batch, StepResult, Evaluation, TrainState> {
  const { loader, checkpoints, validator, pool } = parts;
  return {
    batchesPerEpoch: loader.length,
    epoch: (epoch) => loader.epoch(epoch),
    samples: (batch) => batch.batchSize,
    step: (batch, lr) => (pool ? pool.step(parts.step, batch, lr) : trainStep(parts.step, batch, lr)),
    stepLog: (r) => ({
      cls: r.cls,
      box: r.box,
      iou: r.iou,
      pos: r.numPositives,
      gradNorm: r.gradNorm,
      assignMs: Math.round(r.assignMs),
    }),
    progressDetail: (r) => ` (cls ${r.cls.toFixed(3)} box ${r.box.toFixed(3)} iou ${r.iou.toFixed(3)})`,
    validate: (state) => validator.run(state),
    checkpoint: (state) => checkpoints.step(state),
  };
}

/** The detector's training loop: {@link runTaskLoop} with {@link detectorTask}. */
export function runLoop(config: LoopConfig, parts: LoopParts, limits: LoopLimits): Promise<LoopResult> {
  const { optim, run } = config;
  return runTaskLoop(
    {
      epochs: optim.epochs,
      schedule: optim,
      evalEvery: run.evalEvery,
      checkpointEvery: run.checkpointEvery,
      maxBadSteps: run.maxBadSteps,
      timeBudgetMin: run.timeBudgetMin,
    },
    detectorTask(parts),
    { state: parts.state, log: parts.log, say: parts.say },
    limits,
  );
}
