import { resolve } from 'node:path';
import { type AssignerConfig, createAssigner } from '@bmc/assigners';
import { type BackendChoice, describeBackend, initBackend } from '@bmc/core/backend';
import { writeFileAtomic } from '@bmc/core/node';
import {
  describeEngine,
  fixCpuResizeNearestNeighborGrad,
  installEngineKernels,
  registerCopyFreeWasmKernels,
  registerFastTileGradient,
  registerFastWasmTile,
  registerMissingWasmKernels,
} from '@bmc/engine';
import { buildDetector, type Detector } from '@bmc/heads-iou';
import { stringify as toYaml } from 'yaml';
import type { TrainConfig } from '../config/schema.js';
import { JsonlLog } from '../run/jsonl-log.js';
import { createRunDir, type RunPaths, runPaths } from '../run/run-dir.js';
import { resumeRun } from './checkpoints.js';
import { loadSplits, type Split } from './data.js';
import { checkSplits } from './data-checks.js';
import { lossOptions, toDetectorConfig } from './detector.js';
import { applyStartingWeights } from './init-weights.js';
import { describeStepHeap, planTrainingMemory } from './memory-plan.js';
import { createOptimizer, type Optimizer } from './optimizer.js';
import { threadsPerReplica } from './replicas.js';
import { initialTrainState, type TrainOptions, type TrainState } from './state.js';
import type { StepContext } from './step.js';

/** Everything the loop, validation and the end of a run share. */
export interface TrainSession {
  config: TrainConfig;
  paths: RunPaths;
  log: JsonlLog;
  say: (line: string) => void;
  backend: BackendChoice;
  splits: { train: Split; val: Split; test: Split };
  classes: string[];
  detector: Detector;
  optimizer: Optimizer;
  /** The per-step inputs of `trainStep` (model, assigner, anchors, loss, optimizer, clipping). */
  step: StepContext;
  state: TrainState;
}

/** Sets the tfjs backend and, when asked, the native convolution kernels. */
export async function setUpEngine(
  run: Pick<TrainConfig['run'], 'backend' | 'nativeKernels'>,
  log: (s: string) => void,
  /** onnxruntime threads per convolution; default all cores (data-parallel replicas split them). */
  threads?: number,
): Promise<BackendChoice> {
  const backend = await initBackend(run.backend === 'auto' ? {} : { preference: run.backend });
  log(describeBackend(backend));
  if (backend.name === 'wasm') {
    registerMissingWasmKernels();
    // Saved tensors and bias gradients without wasm's copies and transposes (same values).
    registerCopyFreeWasmKernels();
  }
  if (backend.name === 'cpu') fixCpuResizeNearestNeighborGrad();
  // tfjs-layers' LayerNormalization (the ViT classifier) tiles its statistics: wasm's Tile by block copies.
  if (backend.name === 'wasm') registerFastWasmTile();
  // LayerNormalization's gradient (the ViT classifier) goes through Tile: one reshape + sum, not a slice per repetition.
  registerFastTileGradient();
  if (run.nativeKernels && (backend.name === 'wasm' || backend.name === 'cpu')) {
    installEngineKernels({ backend: backend.name, ...(threads ? { threads } : {}) });
    log(`engine: ${describeEngine().summary}`);
  }
  return backend;
}

/** The run folder must work from any directory later (eval, export, resume): data paths become absolute. */
function withAbsoluteDataPaths(config: TrainConfig): TrainConfig {
  const d = config.data;
  return {
    ...config,
    data: {
      ...d,
      ...(d.path ? { path: resolve(d.path) } : {}),
      ...(d.valPath ? { valPath: resolve(d.valPath) } : {}),
    },
  };
}

/** Restores weights, optimizer slots and train state from the newest readable checkpoint of a run. */
function resumeFrom(s: Omit<TrainSession, 'state' | 'step'>): Promise<TrainState> {
  return resumeRun<TrainState>(s.paths, s.detector.model, s.optimizer, s);
}

/**
 * The set-up stage: run folder and log, backend, data splits, detector,
 * assigner and optimizer, then either the saved state of a resumed run or a
 * fresh one.
 */
export async function setUpTraining(input: TrainConfig, options: TrainOptions): Promise<TrainSession> {
  const config = withAbsoluteDataPaths(input);
  const say = options.log ?? ((s: string) => console.log(s));
  const paths = options.resume
    ? runPaths(options.resume)
    : createRunDir(options.runsDir ?? 'runs', config.name);
  if (!options.resume) writeFileAtomic(paths.config, toYaml(config));
  const log = new JsonlLog(paths.log);
  const replicas = config.run.replicas;
  const backend = await setUpEngine(config.run, say, replicas > 1 ? threadsPerReplica(replicas) : undefined);

  const splits = await loadSplits(config);
  checkSplits(splits, config, { say, log });
  say(splits.train.scale.description);
  const classes = splits.train.classes;
  const detector = buildDetector(toDetectorConfig(config, classes.length));
  // Before any step: a step that cannot fit in tfjs-wasm's 4 GiB heap is refused (exit 2) with the ways out.
  const memory = planTrainingMemory(config, detector.model, backend.name);
  if (memory) say(describeStepHeap(memory));
  const size = config.data.imageSize;
  const anchors = detector.anchorsFor(size, size);
  const optimizer = createOptimizer(config);
  const { microBatch, batchSize } = config.optim;
  if (microBatch > 0 && microBatch < batchSize) {
    say(
      `batch ${batchSize} in micro-batches of ${microBatch}` +
        (config.model.backbone.frozenBatchNorm
          ? ''
          : ' (warning: BatchNorm is not frozen, so its batch statistics come from each micro-batch, not the whole batch)'),
    );
  }
  const step: StepContext = {
    model: detector.model,
    assigner: createAssigner({ type: config.assigner.type, ...config.assigner.options } as AssignerConfig),
    anchors,
    strides: detector.strides,
    numClasses: classes.length,
    loss: lossOptions(config),
    optimizer,
    clipGradNorm: config.optim.clipGradNorm,
    microBatch: config.optim.microBatch,
  };
  const session = { config, paths, log, say, backend, splits, classes, detector, optimizer, step };
  let state: TrainState;
  if (options.resume) {
    state = await resumeFrom(session);
  } else {
    state = initialTrainState();
    log.write({ event: 'start', config, backend: backend.name, classes, anchors: anchors.boxes.length / 4 });
  }
  // Before the first step (and before replicas copy the weights): --init, backbone weights, freeze.
  await applyStartingWeights(
    { config, model: detector.model, step, state, io: { say, log } },
    { resumed: Boolean(options.resume), ...(options.init ? { init: options.init } : {}) },
  );
  return { ...session, state };
}
