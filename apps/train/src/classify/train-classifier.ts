import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ResNetDepth } from '@bmc/backbone';
import {
  buildClassifier,
  CLASSIFIER_NORMALIZATION,
  type ClassifierArch,
  CROP_RULE_DESCRIPTION,
  classificationReport,
  confusionSvg,
  mostConfusedPairs,
  normalizeCrops,
  type RgbImage,
  resolveVitOptions,
  softmaxRows,
  type VitOptions,
} from '@bmc/classify';
import {
  augmentCrop,
  balancedIndices,
  type LabelledCrops,
  predictLogits,
  stratifiedSplit,
} from '@bmc/classify/train';
import { UsageError } from '@bmc/core';
import { writeFileAtomic } from '@bmc/core/node';
import { encodePng, mixSeed, Rng } from '@bmc/data';
import { restoreCheckpoint } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';
import { JsonlLog } from '../run/jsonl-log.js';
import { listCheckpoints, runPaths } from '../run/run-dir.js';
import { AdamW } from '../train/adamw.js';
import { CheckpointWriter, resumeRun } from '../train/checkpoints.js';
import { type LoopState, runTaskLoop, type TrainTask } from '../train/loop.js';
import { type StopReason, TrainingError } from '../train/state.js';
import { type ClassifierStepResult, classifierStep } from './classifier-step.js';

export interface ClassifierTrainOptions {
  out: string;
  cropSize: number;
  margin: number;
  /** Default `resnet`. */
  arch?: ClassifierArch;
  /** ResNet depth and width multiplier (`arch: 'resnet'`). */
  depth: ResNetDepth;
  width: number;
  /** ViT sizes (`arch: 'vit'`; `@bmc/classify`'s defaults where unset). */
  vit?: VitOptions;
  epochs: number;
  batch: number;
  /** Crops per forward/backward pass (gradient accumulation; 0 = the whole batch). */
  microBatch?: number;
  lr: number;
  weightDecay: number;
  /** Max global gradient norm (0 = no clipping). */
  clipGradNorm?: number;
  seed: number;
  val: number;
  test: number;
  /** Stop training after this many minutes (0 = no limit); the evaluation still runs. */
  timeBudgetMin: number;
  /** Continue the run in `out` from its newest readable checkpoint (same data, split and batch order). */
  resume?: boolean;
  /** Stop (with a checkpoint) after this many optimizer steps in this invocation: tests. */
  maxSteps?: number;
  /** Aborting it stops training cleanly after the current step (the CLI wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
  /** The command's options, written to `classify-options.json` in a new run so `--resume` can re-read its data. */
  commandOptions?: object;
  /** Progress bar (default: when stdout is a TTY). */
  progress?: boolean;
  say: (line: string) => void;
}

export interface ClassifierRunSummary {
  classNames: string[];
  split: { train: number; val: number; test: number };
  steps: number;
  trainSeconds: number;
  stopped: StopReason;
  /** Step of the weights evaluated and exported (`best/`: best validation balanced accuracy). */
  bestStep: number;
  val: ReturnType<typeof classificationReport>;
  test: ReturnType<typeof classificationReport>;
}

/** The classifier's train state: the loop's, and the best validation balanced accuracy so far. */
export interface ClassifierState extends LoopState {
  bestScore: number;
  bestStep: number;
}

/** A classifier batch until its step: which crops (cheap, so a resumed run skips batches for free). */
interface CropIndices {
  epoch: number;
  index: number;
  crops: number[];
}

/**
 * Trains a crop classifier on labelled crops in the detector trainer's loop (`runTaskLoop`: schedule,
 * non-finite steps, checkpoints, resume, time budget, stop signal) and writes a run folder:
 * `checkpoints/step-N` and `best/` (the weights with the best validation balanced accuracy: these
 * are evaluated and exported), `classifier.json` (class names, crop rule, normalisation, split),
 * `split.json`, `log.jsonl`, `report.json`, `report.md`, `confusion.svg` and `confused/` crops.
 */
export async function trainClassifier(
  data: LabelledCrops,
  o: ClassifierTrainOptions,
): Promise<ClassifierRunSummary> {
  const k = data.classNames.length;
  if (o.batch < 2) throw new UsageError(`--batch must be >= 2, got ${o.batch}`);
  const split = stratifiedSplit(data.labels, new Rng(o.seed), o.val, o.test);
  if (split.train.length === 0 || split.test.length === 0)
    throw new UsageError(`too few images for a train / test split (${data.labels.length} crops)`);
  const paths = runPaths(o.out);
  if (!o.resume && listCheckpoints(paths).length > 0)
    throw new UsageError(
      `${o.out} already holds a classifier run: continue it with --resume ${o.out}, or choose another --out`,
    );
  mkdirSync(o.out, { recursive: true });
  if (!o.resume && o.commandOptions)
    await writeFileAtomic(
      join(o.out, 'classify-options.json'),
      `${JSON.stringify(o.commandOptions, null, 2)}\n`,
    );
  const log = new JsonlLog(paths.log);
  const { say } = o;
  say(
    `classes (${k}): ${data.classNames.join(', ')}; stratified split seed ${o.seed}: train ${split.train.length}, val ${split.val.length}, test ${split.test.length}`,
  );

  const arch = o.arch ?? 'resnet';
  const model = buildClassifier({
    numClasses: k,
    cropSize: o.cropSize,
    arch,
    depth: o.depth,
    widthMultiplier: o.width,
    ...(o.vit ? { vit: o.vit } : {}),
    seed: o.seed,
  });
  const optimizer = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay });
  const config = {
    ...o,
    say: undefined,
    signal: undefined,
    commandOptions: undefined,
    classNames: data.classNames,
  };
  const checkpoints = new CheckpointWriter<ClassifierState>(
    paths,
    model,
    optimizer,
    config,
    log,
    2,
    'valBalancedAccuracy',
  );
  let state: ClassifierState;
  if (o.resume) {
    state = await resumeRun<ClassifierState>(paths, model, optimizer, { say, log });
  } else {
    state = { step: 0, epoch: 0, batchInEpoch: 0, badSteps: 0, bestScore: -1, bestStep: -1 };
    log.write({
      event: 'split',
      seed: o.seed,
      valShare: o.val,
      testShare: o.test,
      counts: countSplit(split),
    });
  }
  const trainLabels = Int32Array.from(split.train.map((i) => data.labels[i]!));
  const stepsPerEpoch = Math.max(1, Math.floor(split.train.length / o.batch));
  const totalSteps = stepsPerEpoch * o.epochs;
  const schedule = {
    lr: o.lr,
    steps: [Math.floor(o.epochs * 0.7)],
    gamma: 0.1,
    warmupIters: Math.min(50, Math.floor(totalSteps / 10)),
    warmupFactor: 0.1,
  };
  const stepCtx = {
    model,
    optimizer,
    clipGradNorm: o.clipGradNorm ?? 5,
    ...(o.microBatch ? { microBatch: o.microBatch } : {}),
  };
  let validatedStep = -1;
  const validate = async (s: ClassifierState) => {
    validatedStep = s.step;
    if (split.val.length === 0) {
      // Nothing to choose by: best/ follows the latest weights.
      s.bestStep = s.step;
      await checkpoints.best(s, Number.NaN);
      return undefined;
    }
    const rep = evaluate(model, data, split.val, o.cropSize).report;
    log.write({
      event: 'eval',
      split: 'val',
      step: s.step,
      epoch: s.epoch,
      balancedAccuracy: rep.balancedAccuracy,
      macroF1: rep.macroF1,
      accuracy: rep.accuracy,
    });
    say(
      `validation at step ${s.step} (epoch ${s.epoch}): balanced accuracy ${rep.balancedAccuracy.toFixed(3)}, macro-F1 ${rep.macroF1.toFixed(3)}, accuracy ${rep.accuracy.toFixed(3)}`,
    );
    if (rep.balancedAccuracy > s.bestScore) {
      s.bestScore = rep.balancedAccuracy;
      s.bestStep = s.step;
      await checkpoints.best(s, rep.balancedAccuracy);
    }
    return rep;
  };
  const task: TrainTask<CropIndices, ClassifierStepResult, unknown, ClassifierState> = {
    batchesPerEpoch: stepsPerEpoch,
    // Class-balanced order and augmentation are functions of (seed, epoch, batch): a resumed run
    // trains on exactly the batches the uninterrupted run would have.
    async *epoch(epoch) {
      const order = balancedIndices(
        trainLabels,
        new Rng(mixSeed(o.seed, epoch, 0xc1a5)),
        stepsPerEpoch * o.batch,
      );
      for (let b = 0; b < stepsPerEpoch; b++)
        yield {
          epoch,
          index: b,
          crops: order.slice(b * o.batch, (b + 1) * o.batch).map((j) => split.train[j]!),
        };
    },
    samples: (b) => b.crops.length,
    step(b, lr) {
      const rng = new Rng(mixSeed(o.seed, b.epoch, b.index, 0xa06));
      const x = normalizeCrops(b.crops.map((i) => augmentCrop(rng, data.crops[i]!)));
      return classifierStep(
        stepCtx,
        { x, labels: Int32Array.from(b.crops.map((i) => data.labels[i]!)), cropSize: o.cropSize },
        lr,
      );
    },
    // tf.memory() after each step: flat after the first (which creates the optimizer's slots), no leak.
    stepLog: (r) => ({ accuracy: r.accuracy, gradNorm: r.gradNorm, tensors: tf.memory().numTensors }),
    progressDetail: (r) => ` (batch accuracy ${r.accuracy.toFixed(2)})`,
    validate,
    checkpoint: (s) => checkpoints.step(s),
  };
  const started = performance.now();
  const loop = await runTaskLoop(
    {
      epochs: o.epochs,
      schedule,
      evalEvery: 1,
      checkpointEvery: 0,
      maxBadSteps: 5,
      timeBudgetMin: o.timeBudgetMin,
    },
    task,
    { state, log, say },
    {
      progress: o.progress ?? Boolean(process.stdout.isTTY),
      ...(o.maxSteps !== undefined ? { maxSteps: o.maxSteps } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    },
  );
  const trainSeconds = (performance.now() - started) / 1000;
  // The end of a run, as the detector's (finish.ts): early stops validate the final weights and
  // leave a step checkpoint to resume from.
  if (loop.stopped !== 'finished' && loop.stopped !== 'non-finite-loss') {
    if (validatedStep !== state.step) await validate(state);
    await checkpoints.step(state);
    say(
      `training stopped (${loop.stopped}) at step ${state.step}; continue with: bmc classify train --resume ${o.out}`,
    );
  }
  log.write({
    event: 'stop',
    reason: loop.stopped,
    step: state.step,
    bestStep: state.bestStep,
    seconds: trainSeconds,
  });
  optimizer.dispose();
  if (loop.stopped === 'non-finite-loss') {
    model.dispose();
    throw new TrainingError(
      `loss was not finite for ${state.badSteps} steps in a row (last at step ${state.step}); the last good weights are in ${paths.checkpoints}. Lower --lr.`,
    );
  }
  // Evaluate (and export) the best validated weights.
  if (existsSync(paths.best)) await restoreCheckpoint(paths.best, model);
  say(`best/ holds step ${state.bestStep} (validation balanced accuracy ${state.bestScore.toFixed(3)})`);

  const val = evaluate(model, data, split.val, o.cropSize);
  const test = evaluate(model, data, split.test, o.cropSize);
  const meta = {
    format: 'bmc-classifier/1',
    classNames: data.classNames,
    cropSize: o.cropSize,
    margin: o.margin,
    cropRule: CROP_RULE_DESCRIPTION,
    normalization: { ...CLASSIFIER_NORMALIZATION, scale: '1/255', layout: 'NHWC RGB' },
    architecture:
      arch === 'vit'
        ? {
            arch,
            backbone: 'vit',
            ...resolveVitOptions(o.cropSize, o.vit),
            position: 'conditional (3x3 conv after block 1)',
            head: 'layer norm + mean of tokens + linear',
            parameters: model.countParams(),
          }
        : {
            arch,
            backbone: `resnet${o.depth}`,
            widthMultiplier: o.width,
            head: 'global average pool + linear',
            parameters: model.countParams(),
          },
    split: { seed: o.seed, valShare: o.val, testShare: o.test, counts: countSplit(split) },
  };
  await writeFileAtomic(join(o.out, 'classifier.json'), `${JSON.stringify(meta, null, 2)}\n`);
  // The exact held-out sets by source, so another trainer (tooling/classify_torchvision.py) uses the same split.
  const byName = (idx: number[]) => idx.map((i) => data.sources[i]!);
  await writeFileAtomic(
    join(o.out, 'split.json'),
    `${JSON.stringify({ classNames: data.classNames, train: byName(split.train), val: byName(split.val), test: byName(split.test) })}\n`,
  );
  await writeReport(o.out, data, test, val.report, {
    steps: state.step,
    bestStep: state.bestStep,
    trainSeconds,
    stopped: loop.stopped,
    split: countSplit(split),
  });
  model.dispose();
  return {
    classNames: data.classNames,
    split: countSplit(split),
    steps: state.step,
    trainSeconds,
    stopped: loop.stopped,
    bestStep: state.bestStep,
    val: val.report,
    test: test.report,
  };
}

function countSplit(s: { train: number[]; val: number[]; test: number[] }) {
  return { train: s.train.length, val: s.val.length, test: s.test.length };
}

interface Evaluated {
  report: ReturnType<typeof classificationReport>;
  indices: number[];
  pred: number[];
  prob: number[];
}

function evaluate(
  model: tf.LayersModel,
  data: LabelledCrops,
  indices: number[],
  cropSize: number,
): Evaluated {
  const k = data.classNames.length;
  const logits = predictLogits(model, normalizeCrops(indices.map((i) => data.crops[i]!)), cropSize);
  const probs = softmaxRows(logits, k);
  const pred: number[] = [];
  const prob: number[] = [];
  for (let r = 0; r < indices.length; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[r * k + j]! > probs[r * k + best]!) best = j;
    pred.push(best);
    prob.push(probs[r * k + best]!);
  }
  const truth = indices.map((i) => data.labels[i]!);
  return { report: classificationReport(truth, pred, k), indices, pred, prob };
}

/** Up to `n` crops side by side (1 px white gaps), for the confused-pair examples. */
function montage(crops: RgbImage[]): RgbImage {
  const s = crops[0]!.width;
  const w = crops.length * (s + 1) - 1;
  const data = new Float32Array(w * s * 3).fill(1);
  crops.forEach((c, i) => {
    for (let y = 0; y < s; y++)
      data.set(c.data.subarray(y * s * 3, (y + 1) * s * 3), (y * w + i * (s + 1)) * 3);
  });
  return { data, width: w, height: s };
}

async function writeReport(
  out: string,
  data: LabelledCrops,
  test: Evaluated,
  val: ReturnType<typeof classificationReport>,
  run: { steps: number; bestStep: number; trainSeconds: number; stopped: string; split: object },
): Promise<void> {
  const names = data.classNames;
  const rep = test.report;
  await writeFileAtomic(
    join(out, 'confusion.svg'),
    confusionSvg(rep.confusion, names, 'Held-out test split: rows true, columns predicted'),
  );
  const pairs = mostConfusedPairs(rep.confusion, 5);
  const tmp = join(out, 'confused.tmp');
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const examples: { truth: string; pred: string; count: number; png: string; sources: string[] }[] = [];
  for (const p of pairs) {
    const hits = test.indices
      .filter((_, r) => data.labels[test.indices[r]!] === p.truth && test.pred[r] === p.pred)
      .slice(0, 6);
    const png = `${names[p.truth]}-as-${names[p.pred]}.png`;
    await writeFileAtomic(join(tmp, png), await encodePng(montage(hits.map((i) => data.crops[i]!))));
    examples.push({
      truth: names[p.truth]!,
      pred: names[p.pred]!,
      count: p.count,
      png: `confused/${png}`,
      sources: hits.map((i) => data.sources[i]!),
    });
  }
  rmSync(join(out, 'confused'), { recursive: true, force: true });
  renameSync(tmp, join(out, 'confused'));
  const json = {
    run,
    test: { ...rep, perClass: rep.perClass.map((s, i) => ({ class: names[i], ...s })) },
    val: { balancedAccuracy: val.balancedAccuracy, macroF1: val.macroF1, accuracy: val.accuracy },
    mostConfused: examples,
  };
  await writeFileAtomic(join(out, 'report.json'), `${JSON.stringify(json, null, 2)}\n`);
  const f = (x: number) => x.toFixed(3);
  const md = [
    '# Cell-type classifier: held-out test split',
    '',
    `${run.steps} steps, ${run.trainSeconds.toFixed(0)} s of training (${run.stopped}); the weights of step ${run.bestStep} (best validation balanced accuracy); split ${JSON.stringify(run.split)}.`,
    '',
    `Balanced accuracy **${f(rep.balancedAccuracy)}**, macro-F1 **${f(rep.macroF1)}**, accuracy ${f(rep.accuracy)} (validation: balanced accuracy ${f(val.balancedAccuracy)}, macro-F1 ${f(val.macroF1)}).`,
    '',
    '| class | precision | recall | F1 | support |',
    '|---|---|---|---|---|',
    ...rep.perClass.map(
      (s, i) => `| ${names[i]} | ${f(s.precision)} | ${f(s.recall)} | ${f(s.f1)} | ${s.support} |`,
    ),
    '',
    '![confusion matrix](confusion.svg)',
    '',
    '## Most confused pairs (true -> predicted)',
    '',
    ...examples.map((e) => `- ${e.truth} -> ${e.pred}: ${e.count} ![](${e.png})`),
    '',
  ].join('\n');
  await writeFileAtomic(join(out, 'report.md'), md);
}
