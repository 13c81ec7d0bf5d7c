import type { TrainConfig } from '../config/schema.js';
import { CheckpointWriter } from './checkpoints.js';
import { trainLoader } from './data.js';
import { finishRun } from './finish.js';
import { runLoop } from './loop.js';
import { ReplicaPool, threadsPerReplica } from './replicas.js';
import { setUpTraining, type TrainSession } from './setup.js';
import type { TrainOptions, TrainOutcome } from './state.js';
import { Validator } from './validation.js';
import { explainWasmAbort } from './wasm-abort.js';

export { setUpEngine } from './setup.js';
export * from './state.js';

/** Data-parallel replicas when the config asks for them and the backend allows them. */
async function startReplicas(s: TrainSession): Promise<ReplicaPool | undefined> {
  const replicas = s.config.run.replicas;
  if (replicas <= 1) return undefined;
  if (s.backend.name !== 'wasm' && s.backend.name !== 'cpu') {
    s.say(
      `run.replicas ${replicas} ignored: data-parallel replicas are for the wasm and cpu backends (this is ${s.backend.name})`,
    );
    return undefined;
  }
  const pool = await ReplicaPool.start(s.detector.model, {
    config: s.config,
    numClasses: s.classes.length,
    replicas,
  });
  s.say(
    `data-parallel: ${pool.size} replicas (worker threads), ${threadsPerReplica(replicas)} onnxruntime thread(s) each`,
  );
  return pool;
}

/**
 * Trains a detector as the config says, in a run folder, in four stages:
 * set-up (setup.ts), the loop of steps (loop.ts), checkpoints and validation
 * along the way (checkpoints.ts, validation.ts) and the end of the run
 * (finish.ts). `resume` continues a run at its newest readable checkpoint with
 * the same schedule and data order.
 */
export async function train(config: TrainConfig, options: TrainOptions = {}): Promise<TrainOutcome> {
  const started = performance.now();
  const s = await setUpTraining(config, options);
  const checkpoints = new CheckpointWriter(s.paths, s.detector.model, s.optimizer, s.config, s.log);
  const validator = new Validator(s.config, s.detector, s.splits.val, s.classes, checkpoints, s.log, s.say);
  const pool = await startReplicas(s);
  let loop: Awaited<ReturnType<typeof runLoop>>;
  try {
    loop = await runLoop(
      s.config,
      {
        state: s.state,
        step: s.step,
        loader: trainLoader(s.config, s.splits.train, s.config.run.seed, s),
        checkpoints,
        validator,
        log: s.log,
        say: s.say,
        ...(pool ? { pool } : {}),
      },
      {
        progress: options.progress ?? Boolean(process.stdout.isTTY),
        ...(options.maxSteps !== undefined ? { maxSteps: options.maxSteps } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
  } catch (err) {
    throw explainWasmAbort(err, s);
  } finally {
    await pool?.close();
  }
  return finishRun(s, loop, checkpoints, validator, (performance.now() - started) / 1000).catch((err) => {
    throw explainWasmAbort(err, s);
  });
}
