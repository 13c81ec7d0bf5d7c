import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ResNetDepth } from '@bmc/backbone';
import {
  buildClassifier,
  CLASSIFIER_NORMALIZATION,
  CROP_RULE_DESCRIPTION,
  classificationReport,
  confusionSvg,
  mostConfusedPairs,
  normalizeCrops,
  type RgbImage,
  softmaxRows,
} from '@bmc/classify';
import {
  augmentCrop,
  balancedIndices,
  classifierParams,
  classifierStep,
  type LabelledCrops,
  predictLogits,
  stratifiedSplit,
} from '@bmc/classify/train';
import { UsageError } from '@bmc/core';
import { writeFileAtomic } from '@bmc/core/node';
import { encodePng, Rng } from '@bmc/data';
import { saveCheckpoint } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';
import { AdamW } from '../train/adamw.js';
import { learningRate } from '../train/schedule.js';

export interface ClassifierTrainOptions {
  out: string;
  cropSize: number;
  margin: number;
  depth: ResNetDepth;
  width: number;
  epochs: number;
  batch: number;
  lr: number;
  weightDecay: number;
  seed: number;
  val: number;
  test: number;
  /** Stop training after this many minutes (0 = no limit); the evaluation still runs. */
  timeBudgetMin: number;
  say: (line: string) => void;
}

export interface ClassifierRunSummary {
  classNames: string[];
  split: { train: number; val: number; test: number };
  steps: number;
  trainSeconds: number;
  val: ReturnType<typeof classificationReport>;
  test: ReturnType<typeof classificationReport>;
}

/**
 * Trains a crop classifier on labelled crops and writes a run folder: `checkpoint/` (the model,
 * bmc checkpoint format), `classifier.json` (class names, crop rule, normalisation, split),
 * `log.jsonl`, `report.json`, `report.md`, `confusion.svg` and `confused/` example crops.
 * The optimizer (AdamW, PyTorch's rule) and the warm-up schedule are the detector trainer's.
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
  mkdirSync(o.out, { recursive: true });
  const logLines: string[] = [];
  const log = (rec: object) => logLines.push(JSON.stringify(rec));
  o.say(
    `classes (${k}): ${data.classNames.join(', ')}; stratified split seed ${o.seed}: train ${split.train.length}, val ${split.val.length}, test ${split.test.length}`,
  );
  log({ event: 'split', seed: o.seed, valShare: o.val, testShare: o.test, counts: countSplit(split) });

  const model = buildClassifier({
    numClasses: k,
    cropSize: o.cropSize,
    depth: o.depth,
    widthMultiplier: o.width,
  });
  const params = classifierParams(model);
  const optimizer = new AdamW({ beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay });
  const ctx = { model, params, optimizer, clipGradNorm: 5 };
  const rng = new Rng(o.seed + 1);
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
  const started = performance.now();
  const budgetMs = o.timeBudgetMin * 60_000;
  let step = 0;
  let stopped = 'finished';
  const before = tf.memory().numTensors;
  train: for (let epoch = 0; epoch < o.epochs; epoch++) {
    const order = balancedIndices(trainLabels, rng, stepsPerEpoch * o.batch);
    let lossSum = 0;
    let accSum = 0;
    for (let b = 0; b < stepsPerEpoch; b++) {
      const idx = order.slice(b * o.batch, (b + 1) * o.batch).map((j) => split.train[j]!);
      const crops = idx.map((i) => augmentCrop(rng, data.crops[i]!));
      const x = tf.tensor4d(normalizeCrops(crops), [idx.length, o.cropSize, o.cropSize, 3]);
      const lr = learningRate(schedule, step, epoch);
      const r = classifierStep(ctx, x, Int32Array.from(idx.map((i) => data.labels[i]!)), lr);
      x.dispose();
      step++;
      lossSum += r.loss;
      accSum += r.accuracy;
      log({
        event: 'step',
        step,
        epoch,
        lr,
        // Flat after the first step (which creates the optimizer's moment slots): no leak.
        tensors: tf.memory().numTensors,
        loss: r.loss,
        accuracy: r.accuracy,
        gradNorm: r.gradNorm,
        finite: r.finite,
      });
      if (budgetMs > 0 && performance.now() - started > budgetMs) {
        stopped = 'time-budget';
        o.say(`epoch ${epoch + 1}: time budget of ${o.timeBudgetMin} min reached after ${step} steps`);
        break train;
      }
    }
    const valRep = split.val.length ? evaluate(model, data, split.val, o.cropSize).report : undefined;
    const msg = `epoch ${epoch + 1}/${o.epochs}: loss ${(lossSum / stepsPerEpoch).toFixed(4)}, train acc ${(accSum / stepsPerEpoch).toFixed(3)}${valRep ? `, val balanced acc ${valRep.balancedAccuracy.toFixed(3)}, macro-F1 ${valRep.macroF1.toFixed(3)}` : ''} (${((performance.now() - started) / 1000).toFixed(0)} s)`;
    o.say(msg);
    log({
      event: 'epoch',
      epoch: epoch + 1,
      loss: lossSum / stepsPerEpoch,
      valBalancedAccuracy: valRep?.balancedAccuracy,
      valMacroF1: valRep?.macroF1,
    });
  }
  const trainSeconds = (performance.now() - started) / 1000;
  log({
    event: 'end',
    stopped,
    steps: step,
    trainSeconds,
    tensorsBefore: before,
    tensorsAfter: tf.memory().numTensors,
  });

  const val = evaluate(model, data, split.val, o.cropSize);
  const test = evaluate(model, data, split.test, o.cropSize);
  await saveCheckpoint(join(o.out, 'checkpoint'), {
    model,
    state: { step, epoch: o.epochs, config: { ...o, say: undefined } },
  });
  const meta = {
    format: 'bmc-classifier/1',
    classNames: data.classNames,
    cropSize: o.cropSize,
    margin: o.margin,
    cropRule: CROP_RULE_DESCRIPTION,
    normalization: { ...CLASSIFIER_NORMALIZATION, scale: '1/255', layout: 'NHWC RGB' },
    architecture: {
      backbone: `resnet${o.depth}`,
      widthMultiplier: o.width,
      head: 'global average pool + linear',
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
  await writeFileAtomic(join(o.out, 'log.jsonl'), `${logLines.join('\n')}\n`);
  await writeReport(o.out, data, test, val.report, {
    steps: step,
    trainSeconds,
    stopped,
    split: countSplit(split),
  });
  model.dispose();
  return {
    classNames: data.classNames,
    split: countSplit(split),
    steps: step,
    trainSeconds,
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
  run: { steps: number; trainSeconds: number; stopped: string; split: object },
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
    `${run.steps} steps, ${run.trainSeconds.toFixed(0)} s of training (${run.stopped}); split ${JSON.stringify(run.split)}.`,
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
