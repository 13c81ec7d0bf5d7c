import type { Batch, BatchLoader } from '@bmc/data';
import type { TrainConfig } from '../config/schema.js';
import type { JsonlLog } from '../run/jsonl-log.js';
import type { CheckpointWriter } from './checkpoints.js';
import type { Evaluation } from './evaluate.js';
import { TrainProgress } from './progress.js';
import type { ReplicaPool } from './replicas.js';
import { learningRate } from './schedule.js';
import type { StopReason, TrainState } from './state.js';
import { type StepContext, type StepResult, trainStep } from './step.js';
import type { Validator } from './validation.js';

/** What the loop reads of the config: the schedule and the run's limits. */
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

export interface LoopLimits {
  /** Stop after this many optimizer steps in this invocation. */
  maxSteps?: number;
  /** Stop cleanly after the current step once aborted. */
  signal?: AbortSignal;
  progress: boolean;
}

export interface LoopResult {
  stopped: StopReason;
  lastEval?: Evaluation;
  peakRss: number;
}

/**
 * The training loop: epochs of optimizer steps from where `state` stands, a
 * non-finite step skipped (and the run stopped after `run.maxBadSteps` in a
 * row), step checkpoints every `run.checkpointEvery` steps, validation every
 * `run.evalEvery` epochs and a checkpoint at each epoch end. Ends early on
 * the time budget, `maxSteps` or the abort signal; the caller finishes the run.
 */
export async function runLoop(config: LoopConfig, parts: LoopParts, limits: LoopLimits): Promise<LoopResult> {
  const { state, loader, checkpoints, validator, log, say, pool } = parts;
  const { optim, run } = config;
  const progress = new TrainProgress(limits.progress, loader.length * optim.epochs, state.step, state.epoch);
  const started = performance.now();
  const budgetMs = run.timeBudgetMin * 60_000;
  let stepsThisRun = 0;
  let peakRss = process.memoryUsage().rss;
  let lastEval: Evaluation | undefined;
  const stopReason = (): StopReason | undefined => {
    if (limits.signal?.aborted) return 'signal';
    if (limits.maxSteps !== undefined && stepsThisRun >= limits.maxSteps) return 'max-steps';
    if (budgetMs > 0 && performance.now() - started > budgetMs) return 'time-budget';
    return undefined;
  };

  try {
    while (state.epoch < optim.epochs) {
      const t0 = performance.now();
      let images = 0;
      let b = 0;
      for await (const batch of loader.epoch(state.epoch)) {
        if (b++ < state.batchInEpoch) continue; // already trained on before the resume
        const lr = learningRate(optim, state.step, state.epoch);
        const r: StepResult = pool
          ? await pool.step(parts.step, batch as Batch, lr)
          : trainStep(parts.step, batch as Batch, lr);
        images += batch.batchSize;
        if (!r.finite) {
          state.badSteps++;
          log.write({ event: 'non-finite-loss', step: state.step, ...r });
          say(
            `warning: step ${state.step}: loss ${r.total}, gradient norm ${r.gradNorm}: step skipped (${state.badSteps} in a row)`,
          );
          if (state.badSteps >= run.maxBadSteps)
            return { stopped: 'non-finite-loss', peakRss, ...(lastEval ? { lastEval } : {}) };
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
        progress.update(state.step, state.epoch, r, lr, ips);
        if (run.checkpointEvery > 0 && state.step % run.checkpointEvery === 0) await checkpoints.step(state);
        const stop = stopReason();
        if (stop) return { stopped: stop, peakRss, ...(lastEval ? { lastEval } : {}) };
      }
      state.epoch++;
      state.batchInEpoch = 0;
      const evalNow = run.evalEvery > 0 && state.epoch % run.evalEvery === 0;
      if (evalNow || state.epoch === optim.epochs) lastEval = await validator.run(state);
      await checkpoints.step(state);
    }
    return { stopped: 'finished', peakRss, ...(lastEval ? { lastEval } : {}) };
  } finally {
    progress.stop();
  }
}
