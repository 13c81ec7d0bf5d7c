import type { BackendChoice } from '@bmc/core/backend';
import type { OperatingPoint } from '@bmc/export';
import type { Detector } from '@bmc/heads-iou';
import type { RunPaths } from '../run/run-dir.js';
import type { Split } from './data.js';
import type { Evaluation } from './evaluate.js';

/** Where training stands; saved in every checkpoint and enough to resume exactly. */
export interface TrainState {
  step: number;
  /** Epoch in progress (0-based). */
  epoch: number;
  /** Batches of `epoch` already trained on (the loader's order is a function of seed and epoch). */
  batchInEpoch: number;
  bestAp: number;
  bestStep: number;
  /**
   * Counting threshold of the weights last validated (best F1 at IoU 0.5 on validation); the
   * copy in `best/` is the one measured with best/'s weights, and `bmc export` records it.
   */
  operatingPoint?: OperatingPoint;
  badSteps: number;
}

export const initialTrainState = (): TrainState => ({
  step: 0,
  epoch: 0,
  batchInEpoch: 0,
  bestAp: -1,
  bestStep: -1,
  badSteps: 0,
});

export interface TrainOptions {
  /** Parent folder for a new run. Default `runs`. */
  runsDir?: string;
  /** Continue an existing run folder. */
  resume?: string;
  /** Start a new run from a whole detector: a run folder, a checkpoint folder or a shipped model's name. */
  init?: string;
  /** Print a progress bar (default: when stdout is a TTY). */
  progress?: boolean;
  /** Receives one line per notable event (default console.log). */
  log?: (line: string) => void;
  /** Stop (with a checkpoint) after this many optimizer steps in this invocation: tests. */
  maxSteps?: number;
  /** Aborting it stops training cleanly after the current step (the CLI wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
}

/** Why the loop ended. */
export type StopReason = 'finished' | 'time-budget' | 'max-steps' | 'signal' | 'non-finite-loss';

export interface TrainOutcome {
  paths: RunPaths;
  state: TrainState;
  detector: Detector;
  splits: { train: Split; val: Split; test: Split };
  backend: BackendChoice;
  stopped: StopReason;
  lastEval?: Evaluation;
  peakRssMb: number;
}

export class TrainingError extends Error {
  override name = 'TrainingError';
}
