import { rmSync } from 'node:fs';
import { restoreCheckpoint, saveCheckpoint, verifyCheckpoint } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';
import type { JsonlLog } from '../run/jsonl-log.js';
import { resumeCheckpoint } from '../run/resume.js';
import { checkpointDir, listCheckpoints, type RunPaths } from '../run/run-dir.js';
import type { LoopState } from './loop.js';
import type { Optimizer } from './optimizer.js';
import { TrainingError } from './state.js';
import { trainableParams } from './step.js';

/**
 * What happens at a checkpoint: the model, the optimizer's slots and the train
 * state go to `checkpoints/step-N` (atomic, the newest `keep` kept) or to
 * `best/`. The config travels in every checkpoint so a checkpoint folder alone
 * can rebuild its model (the detector's TrainConfig, the classifier's options). Any task's state.
 */
export class CheckpointWriter<S extends LoopState = LoopState> {
  constructor(
    private readonly paths: RunPaths,
    private readonly model: tf.LayersModel,
    private readonly optimizer: Optimizer,
    private readonly config: object,
    private readonly log: JsonlLog,
    private readonly keep = 2,
    /** The validation score `best()` records, as log.jsonl names it. */
    private readonly metric = 'AP',
  ) {}

  private async write(dir: string, state: S): Promise<void> {
    const o = this.optimizer;
    await saveCheckpoint(dir, {
      model: this.model,
      state: { step: state.step, epoch: state.epoch, train: { ...state }, config: this.config },
      optimizer: { slots: o.state(), config: { ...o.options, counters: o.counters() } },
    });
  }

  /** A step checkpoint; older ones beyond `keep` are removed. */
  async step(state: S): Promise<void> {
    await this.write(checkpointDir(this.paths, state.step), state);
    for (const c of listCheckpoints(this.paths).slice(this.keep))
      rmSync(c.dir, { recursive: true, force: true });
    this.log.write({
      event: 'checkpoint',
      step: state.step,
      epoch: state.epoch,
      batchInEpoch: state.batchInEpoch,
    });
  }

  /** Replaces `best/` with the current weights. */
  async best(state: S, score: number): Promise<void> {
    await this.write(this.paths.best, state);
    this.log.write({ event: 'best', step: state.step, [this.metric]: score });
  }
}

/** Newest step checkpoint that verifies; a corrupt one is reported and the previous one tried. */
export function newestGoodCheckpoint(paths: RunPaths, say: (s: string) => void): string | undefined {
  for (const c of listCheckpoints(paths)) {
    try {
      verifyCheckpoint(c.dir);
      return c.dir;
    } catch (err) {
      say(`checkpoint ${c.dir} is unusable (${(err as Error).message}); trying the previous one`);
    }
  }
  return undefined;
}

/**
 * Restores a run folder's weights, optimizer slots and train state from its newest readable
 * checkpoint (else `best/`), for any task: the model must have the checkpoint's architecture.
 */
export async function resumeRun<S extends LoopState>(
  paths: RunPaths,
  model: tf.LayersModel,
  optimizer: Optimizer,
  io: { say: (s: string) => void; log: JsonlLog },
): Promise<S> {
  const dir = resumeCheckpoint(paths, io.say);
  if (!dir) throw new TrainingError(`--resume ${paths.root}: no readable checkpoint in ${paths.checkpoints}`);
  const restored = await restoreCheckpoint(dir, model);
  if (restored.optimizer) {
    optimizer.load(restored.optimizer.slots, trainableParams(model));
    optimizer.loadCounters(
      (restored.optimizer.config as { counters?: Record<string, number> } | undefined)?.counters,
    );
    tf.dispose(Object.values(restored.optimizer.slots));
  }
  const state = restored.state?.train as S;
  io.say(`resumed from ${dir} at step ${state.step} (epoch ${state.epoch + 1}, batch ${state.batchInEpoch})`);
  io.log.write({ event: 'resume', checkpoint: dir, ...(state as object) });
  return state;
}
