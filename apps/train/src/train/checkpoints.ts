import { rmSync } from 'node:fs';
import { saveCheckpoint, verifyCheckpoint } from '@bmc/export';
import type * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import type { JsonlLog } from '../run/jsonl-log.js';
import { checkpointDir, listCheckpoints, type RunPaths } from '../run/run-dir.js';
import type { Optimizer } from './optimizer.js';
import type { TrainState } from './state.js';

/**
 * What happens at a checkpoint: the model, the optimizer's slots and the train
 * state go to `checkpoints/step-N` (atomic, the newest `keep` kept) or to
 * `best/`. The config travels in every checkpoint so a checkpoint folder alone
 * can rebuild its detector.
 */
export class CheckpointWriter {
  constructor(
    private readonly paths: RunPaths,
    private readonly model: tf.LayersModel,
    private readonly optimizer: Optimizer,
    private readonly config: TrainConfig,
    private readonly log: JsonlLog,
    private readonly keep = 2,
  ) {}

  private async write(dir: string, state: TrainState): Promise<void> {
    const o = this.optimizer;
    await saveCheckpoint(dir, {
      model: this.model,
      state: { step: state.step, epoch: state.epoch, train: { ...state }, config: this.config },
      optimizer: { slots: o.state(), config: { ...o.options, counters: o.counters() } },
    });
  }

  /** A step checkpoint; older ones beyond `keep` are removed. */
  async step(state: TrainState): Promise<void> {
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
  async best(state: TrainState, ap: number): Promise<void> {
    await this.write(this.paths.best, state);
    this.log.write({ event: 'best', step: state.step, AP: ap });
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
