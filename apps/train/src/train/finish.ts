import type { CheckpointWriter } from './checkpoints.js';
import type { LoopResult } from './loop.js';
import type { TrainSession } from './setup.js';
import { TrainingError, type TrainOutcome } from './state.js';
import type { Validator } from './validation.js';

/**
 * The end of a run. A run cut short by its time budget or a signal validates
 * its final weights (unless that step was just validated), so `best/` is never
 * older than the weights the run ends with; every early stop leaves a step
 * checkpoint to resume from. A non-finite stop is an error that names where
 * the good weights are.
 */
export async function finishRun(
  session: TrainSession,
  loop: LoopResult,
  checkpoints: CheckpointWriter,
  validator: Validator,
  seconds: number,
): Promise<TrainOutcome> {
  const { state, paths, say, log } = session;
  let lastEval = loop.lastEval;
  if ((loop.stopped === 'time-budget' || loop.stopped === 'signal') && !validator.seen(state.step)) {
    lastEval = await validator.run(state);
  }
  if (loop.stopped !== 'finished') {
    await checkpoints.step(state);
    say(
      `training stopped (${loop.stopped}) at step ${state.step}; continue with: bmc train --resume ${paths.root}`,
    );
  }
  if (state.bestStep >= 0)
    say(`best/ holds step ${state.bestStep} (validation AP ${state.bestAp.toFixed(4)})`);
  log.write({ event: 'stop', reason: loop.stopped, step: state.step, bestStep: state.bestStep, seconds });
  session.optimizer.dispose();
  if (loop.stopped === 'non-finite-loss') {
    throw new TrainingError(
      `loss was not finite for ${state.badSteps} steps in a row (last at step ${state.step}); ` +
        `the last good weights are in ${paths.checkpoints}. Lower optim.lr or raise optim.warmupIters.`,
    );
  }
  return {
    paths,
    state,
    detector: session.detector,
    splits: session.splits,
    backend: session.backend,
    stopped: loop.stopped,
    ...(lastEval ? { lastEval } : {}),
    peakRssMb: loop.peakRss / 2 ** 20,
  };
}
