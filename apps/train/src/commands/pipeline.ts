import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { InputError } from '@bmc/core';
import { writeFileAtomic } from '@bmc/core/node';
import { CELL_TYPES, encodePng, generateSmear } from '@bmc/data';
import { exportDetectorOnnx, type OperatingPoint, restoreCheckpoint } from '@bmc/export';
import { buildDetector, type Detector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { type Box, type CalledCell, type KnownCell, typingAgreement } from '../classify/typing-agreement.js';
import { loadConfig } from '../config/load.js';
import type { TrainConfig, TrainConfigInput } from '../config/schema.js';
import { writeRunReport } from '../report/run-report.js';
import { listCheckpoints, type RunPaths, runPaths } from '../run/run-dir.js';
import { loadSplits, type Split } from '../train/data.js';
import { toDetectorConfig } from '../train/detector.js';
import { type Evaluation, evaluatePredictions, predictSplit } from '../train/evaluate.js';
import { inProcessMetadata, runMetadata } from '../train/model-metadata.js';
import { loadRunConfig } from '../train/pixel-scale.js';
import { setUpEngine, train } from '../train/trainer.js';
import { cpuFeatures } from './doctor.js';

export type WhichWeights = 'best' | 'last';

export interface LoadedRun {
  paths: RunPaths;
  config: TrainConfig;
  detector: Detector;
  splits: { train: Split; val: Split; test: Split };
  weights: string;
  /** The counting threshold measured on validation with these weights (absent in older runs). */
  operatingPoint?: OperatingPoint;
}

/** Rebuilds a run's detector from its config and restores the best (or newest) checkpoint. */
export async function loadRun(runDir: string, which: WhichWeights = 'best'): Promise<LoadedRun> {
  const paths = runPaths(resolve(runDir));
  if (!existsSync(paths.config))
    throw new InputError(`${runDir}: not a bmc run folder (no config.yaml)`, runDir);
  const config = loadRunConfig(paths.config);
  const splits = await loadSplits(config);
  const detector = buildDetector(toDetectorConfig(config, splits.train.classes.length));
  const newest = listCheckpoints(paths)[0]?.dir;
  const weights = which === 'best' && existsSync(paths.best) ? paths.best : newest;
  if (!weights) throw new InputError(`${runDir}: no checkpoint to load`, runDir);
  const restored = await restoreCheckpoint(weights, detector.model);
  // Evaluation and export need no optimizer state: the restore hands its tensors to us to free.
  if (restored.optimizer) tf.dispose(Object.values(restored.optimizer.slots));
  const { operatingPoint } = (restored.state?.train ?? {}) as { operatingPoint?: OperatingPoint };
  return { paths, config, detector, splits, weights, ...(operatingPoint ? { operatingPoint } : {}) };
}

export async function evaluateSplit(
  run: Pick<LoadedRun, 'config' | 'detector'>,
  split: Split,
): Promise<Evaluation> {
  const meta = runMetadata(run.config, run.detector.config, split.classes, split.scale.scale);
  const preds = await predictSplit(run.detector.model, split, inProcessMetadata(meta));
  return evaluatePredictions(preds, `${run.config.name}: ${split.name}`);
}

/** Writes the run's network as a self-describing ONNX file (atomic). Returns its size in bytes. */
export function exportRunOnnx(
  run: Pick<LoadedRun, 'config' | 'detector' | 'splits' | 'operatingPoint'>,
  out: string,
): number {
  const bytes = runOnnxBytes(run);
  writeFileAtomic(out, bytes);
  return bytes.length;
}

/** A run's float ONNX file, in memory (`bmc export --int8` quantises it before anything is written). */
export function runOnnxBytes(
  run: Pick<LoadedRun, 'config' | 'detector' | 'splits' | 'operatingPoint'>,
): Uint8Array {
  const { detector, config } = run;
  const meta = runMetadata(config, detector.config, run.splits.train.classes, run.splits.train.scale.scale);
  // The counting threshold travels beside the AP threshold (nms.scoreThreshold).
  const op = run.operatingPoint ? { operatingPoint: run.operatingPoint } : {};
  return exportDetectorOnnx(detector.model, { ...meta, ...op }).bytes;
}

export interface DemoOptions {
  runsDir?: string;
  /** Config keys on top of the `tiny` preset. */
  overrides?: TrainConfigInput;
  set?: string[];
  /** Unseen synthetic images for `bmc detect`. */
  unseen?: number;
  /**
   * Training smears whose cells (labelled by type) train the second stage, the cell-type classifier;
   * 0 = detection only. Default 60.
   */
  classifierImages?: number;
  progress?: boolean;
  log?: (line: string) => void;
}

/**
 * The main job: synthetic smears -> train the tiny detector on CPU -> test
 * evaluation with the best checkpoint -> ONNX export -> `bmc detect` on
 * unseen images with onnxruntime -> report, all in one run folder.
 */
export async function demo(o: DemoOptions = {}): Promise<{ root: string; evaluation: Evaluation }> {
  const say = o.log ?? ((s: string) => console.log(s));
  const t0 = performance.now();
  const config = loadConfig({
    preset: 'tiny',
    set: o.set ?? [],
    ...(o.overrides ? { overrides: o.overrides } : {}),
  });
  const trained = await train(config, {
    runsDir: o.runsDir ?? 'runs',
    log: say,
    ...(o.progress !== undefined ? { progress: o.progress } : {}),
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const run = await loadRun(trained.paths.root, 'best');
  const evaluation = await evaluateSplit(run, run.splits.test);
  const s = evaluation.result.stats;
  say(
    `test (${run.splits.test.source.length} unseen images): AP ${s[0]!.toFixed(4)}  AP50 ${s[1]!.toFixed(4)}  AP75 ${s[2]!.toFixed(4)}`,
  );

  const onnx = join(run.paths.root, 'model.onnx');
  const bytes = exportRunOnnx(run, onnx);
  say(`exported ${onnx} (${(bytes / 2 ** 20).toFixed(2)} MB)`);

  // Images the model has never seen: generator indices past every split.
  const syn = config.data.synthetic;
  const smearOptions = {
    width: syn.width ?? config.data.imageSize,
    height: syn.height ?? config.data.imageSize,
    density: 0.3 * syn.density,
  };
  const second =
    (o.classifierImages ?? 60) > 0
      ? await trainDemoClassifier(run.paths.root, o.classifierImages ?? 60, syn.seed, smearOptions, say)
      : undefined;
  const unseenDir = join(run.paths.root, 'unseen');
  mkdirSync(unseenDir, { recursive: true });
  const first = syn.train + syn.val + syn.test;
  // What was really drawn on the unseen images, by type: the differential the count should find.
  const truth: Record<string, number> = {};
  const known = new Map<string, KnownCell[]>();
  for (let i = 0; i < (o.unseen ?? 8); i++) {
    // The same fields the synthetic splits hold (size and density), so large fields are detected as trained.
    const smear = generateSmear(syn.seed, first + i, smearOptions);
    const cellsHere: KnownCell[] = [];
    smear.labels.forEach((l, b) => {
      const type = CELL_TYPES[l];
      if (!type) return;
      truth[type] = (truth[type] ?? 0) + 1;
      cellsHere.push({ box: Array.from(smear.boxes.subarray(4 * b, 4 * b + 4)) as unknown as Box, type });
    });
    const file = join(unseenDir, `smear_${first + i}.png`);
    known.set(resolve(file), cellsHere);
    writeFileSync(file, await encodePng(smear.image));
  }
  // bmc detect counts at the operating point the export recorded (best F1 at IoU 0.5 on
  // validation), not at the 0.05 candidate threshold, which would count weak candidates too.
  const { detectCommand } = await import('@bmc/infer');
  const detected = await detectCommand({
    inputs: [unseenDir],
    model: onnx,
    out: join(run.paths.root, 'detect'),
    progress: false,
    log: say,
    ...(second ? { classifier: second.onnx, classifierThreshold: 0.5 } : {}),
  });
  const operating = detected.counting.scoreThreshold;
  const chosen =
    detected.counting.source === 'operating-point'
      ? 'the operating point chosen on validation'
      : 'no operating point: every candidate';
  const cells = detected.processed.reduce((n, p) => n + p.count, 0);
  const ms = detected.processed.reduce((n, p) => n + p.ms, 0) / Math.max(1, detected.processed.length);
  say(
    `bmc detect: ${detected.processed.length} unseen images, ${cells} cells at score >= ${operating.toFixed(3)} (${chosen}), ${ms.toFixed(1)} ms/image (onnxruntime-node)`,
  );

  const typed = detected.processed.filter((p) => p.classifyMs !== undefined);
  // Cell by cell: each detected cell matched to a drawn one (IoU >= 0.5), its called type against the drawn type.
  const cellTypesFile = join(run.paths.root, 'detect', 'cell-types.json');
  const agreement =
    second && existsSync(cellTypesFile)
      ? typingAgreement(
          (JSON.parse(readFileSync(cellTypesFile, 'utf8')) as { file: string; cells: CalledCell[] }[]).map(
            (img) => ({ called: img.cells, known: known.get(resolve(img.file)) ?? [] }),
          ),
        )
      : undefined;
  const classifyMs = typed.reduce((n, p) => n + p.classifyMs!, 0) / Math.max(1, typed.length);
  if (second && detected.differential) {
    say(
      `cell types: ${classifyMs.toFixed(1)} ms/image of the ${ms.toFixed(1)} (${((100 * classifyMs) / ms).toFixed(0)}%); differential on ${detected.processed.length} unseen images (probability >= 0.5), counted vs drawn:`,
    );
    const drawn = Object.values(truth).reduce((a, b) => a + b, 0);
    for (const r of detected.differential.rows) {
      const t = truth[r.type];
      say(
        `  ${r.type.padEnd(13)} ${String(r.count).padStart(4)}  ${r.percent.toFixed(1).padStart(5)}%` +
          (t !== undefined
            ? `   drawn ${String(t).padStart(4)}  ${((100 * t) / drawn).toFixed(1).padStart(5)}%`
            : ''),
      );
    }
    say(
      `  ${'nucleated'.padEnd(13)} ${String(detected.differential.total).padStart(4)}  100.0%   drawn ${String(drawn).padStart(4)}  100.0%`,
    );
    if (agreement)
      say(
        `cell by cell: ${agreement.matched} of the ${agreement.known} drawn cells detected (IoU >= 0.5); ${agreement.typed} of them typed, ${agreement.agree} with the drawn type (${((100 * agreement.agree) / Math.max(1, agreement.typed)).toFixed(1)}%), ${agreement.matched - agreement.typed} unclassified`,
      );
  }

  const backend = trained.backend.name;
  const report = await writeRunReport({
    paths: run.paths,
    config,
    test: evaluation,
    testSplit: run.splits.test,
    backend,
    peakRssMb: trained.peakRssMb,
    trainSeconds,
    model: run.detector.model,
    ...(run.operatingPoint ? { operatingPoint: run.operatingPoint } : {}),
    ...(second
      ? {
          classifier: {
            classNames: second.summary.classNames,
            test: second.summary.test,
            steps: second.summary.steps,
            trainSeconds: second.summary.trainSeconds,
            runDir: '../classifier',
            ...(detected.differential
              ? {
                  differential: {
                    counted: detected.differential,
                    truth,
                    images: detected.processed.length,
                    ...(agreement ? { agreement } : {}),
                  },
                }
              : {}),
          },
        }
      : {}),
    extraLines: [
      ...(second
        ? [
            `cell types: classifier.onnx (ResNet18 x0.125 on ${second.summary.split.train} training crops of ${o.classifierImages ?? 60} training smears), ${classifyMs.toFixed(1)} ms/image in bmc detect`,
          ]
        : []),
      `ONNX export: model.onnx, ${(bytes / 2 ** 20).toFixed(2)} MB; bmc detect on ${detected.processed.length} unseen images at score >= ${operating.toFixed(3)} (${chosen}): ${cells} cells, ${ms.toFixed(1)} ms/image with onnxruntime-node (outputs in detect/)`,
      `total wall time ${((performance.now() - t0) / 60_000).toFixed(1)} min`,
    ],
  });
  say(`report: ${report}`);
  // The figures a README may quote, with the machine and its load: copied to results/ when quoted.
  const [ap, ap50, ap75] = s as [number, number, number];
  writeFileAtomic(
    join(run.paths.root, 'demo-result.json'),
    `${JSON.stringify(
      {
        suite: 'demo',
        command: 'pnpm demo',
        date: new Date().toISOString(),
        machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, flags: cpuFeatures() },
        load: loadavg().map((l) => Number(l.toFixed(2))),
        backend,
        steps: trained.state.step,
        trainSeconds: Number(trainSeconds.toFixed(1)),
        wallSeconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
        test: { images: run.splits.test.source.length, AP: ap, AP50: ap50, AP75: ap75 },
        operatingPoint: run.operatingPoint ?? null,
        detect: {
          images: detected.processed.length,
          cells,
          msPerImage: Number(ms.toFixed(1)),
          ...(second ? { classifyMsPerImage: Number(classifyMs.toFixed(1)) } : {}),
        },
        ...(second
          ? {
              classifier: {
                crops: second.summary.split,
                steps: second.summary.steps,
                trainSeconds: Number(second.summary.trainSeconds.toFixed(1)),
                test: {
                  balancedAccuracy: second.summary.test.balancedAccuracy,
                  macroF1: second.summary.test.macroF1,
                  f1: Object.fromEntries(
                    second.summary.classNames.map((n, i) => [n, second.summary.test.perClass[i]!.f1]),
                  ),
                },
              },
              differential: detected.differential
                ? {
                    threshold: detected.differential.threshold,
                    counted: Object.fromEntries(detected.differential.rows.map((r) => [r.type, r.count])),
                    drawn: truth,
                    ...(agreement ? { cellByCell: agreement } : {}),
                  }
                : null,
            }
          : {}),
      },
      null,
      2,
    )}\n`,
  );
  return { root: run.paths.root, evaluation };
}

/**
 * The demo's second stage: a cell-type classifier on the cells of the detector's training smears
 * (the generator labels each with its type), trained in the same loop, exported to ONNX.
 */
async function trainDemoClassifier(
  root: string,
  images: number,
  seed: number,
  smear: { width: number; height: number; density: number },
  say: (s: string) => void,
) {
  const { synthCrops } = await import('@bmc/classify/train');
  const { trainClassifier } = await import('../classify/train-classifier.js');
  const { exportClassifierOnnx } = await import('../classify/export-classifier.js');
  const rule = { cropSize: 32, margin: 0.15 };
  // Generator indices 0.. are the detector's training split: the unseen images stay unseen.
  const data = synthCrops(images, rule, seed, smear);
  say(`cell-type classifier: ${data.crops.length} cells of ${images} training smears, labelled by type`);
  const out = join(root, 'classifier');
  const summary = await trainClassifier(data, {
    out,
    ...rule,
    depth: 18,
    width: 0.125,
    epochs: 5,
    batch: 24,
    lr: 3e-3,
    weightDecay: 1e-4,
    seed,
    val: 0.15,
    test: 0.15,
    // Measured: 5 epochs of 60 smears take under a minute on 2 cores; the budget caps a loaded machine.
    timeBudgetMin: 2,
    progress: false,
    say,
  });
  say(
    `cell types, held-out crops: balanced accuracy ${summary.test.balancedAccuracy.toFixed(3)}, macro-F1 ${summary.test.macroF1.toFixed(3)} (${summary.split.test} crops)`,
  );
  const onnx = join(root, 'classifier.onnx');
  await exportClassifierOnnx(out, onnx);
  return { summary, onnx };
}

export { setUpEngine };
