import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLASSIFIER_ARCHS, resolveVitOptions } from '@bmc/classify';
import { InputError, UsageError } from '@bmc/core';
import { type Command, InvalidArgumentError } from 'commander';
import { setUpEngine } from '../train/setup.js';

const num =
  (flag: string, min: number, integer = false) =>
  (v: string) => {
    const x = Number(v);
    if (!Number.isFinite(x) || x < min || (integer && !Number.isInteger(x)))
      throw new InvalidArgumentError(
        `${flag} must be ${integer ? 'an integer' : 'a number'} >= ${min}, got '${v}'`,
      );
    return x;
  };

/** `bmc classify train|export`: the cell-type classifier (second stage after detection). */
export function registerClassifyCommands(
  program: Command,
  /** The CLI's Ctrl-C / SIGTERM handling (a clean stop after the current step, as `bmc train`). */
  stopOnSignals: () => AbortSignal,
): void {
  const cls = program.command('classify').description('cell-type classifier on cell crops: train, export');
  cls
    .command('train')
    .description(
      'train a crop classifier from a folder per class, a detection dataset (boxes cut with a margin) or synthetic smears; writes a run folder with report, confusion matrix and examples',
    )
    .option(
      '--folders <dir>',
      'one sub-folder per class of single-cell images (e.g. ../shared/data/pbc-cells)',
    )
    .option(
      '--dataset <path>',
      'a detection dataset bmc reads (COCO / VOC / YOLO); each box is one crop of its class',
    )
    .option(
      '--synthetic <images>',
      'synthetic smears; every cell labelled with its type',
      num('--synthetic', 1, true),
    )
    .option('--out <dir>', 'run folder to write')
    .option(
      '--resume <runDir>',
      'continue a classifier run from its newest readable checkpoint (same data, split and batch order)',
    )
    .option('--crop-size <px>', 'classifier input side', num('--crop-size', 32, true), 64)
    .option(
      '--margin <f>',
      'context around a box, fraction of its longer side per side',
      num('--margin', 0),
      0.15,
    )
    .option(
      '--arch <name>',
      `network: ${CLASSIFIER_ARCHS.join(' or ')} (a small vision transformer)`,
      'resnet',
    )
    .option('--depth <n>', 'ResNet depth (18, 34, 50, 101)', num('--depth', 18, true), 18)
    .option('--width <f>', 'ResNet width multiplier (1 = torchvision)', num('--width', 0.01), 0.25)
    .option('--vit-dim <n>', 'ViT token width (default 64)', num('--vit-dim', 1, true))
    .option('--vit-depth <n>', 'ViT transformer blocks (default 4)', num('--vit-depth', 1, true))
    .option(
      '--vit-heads <n>',
      'ViT attention heads, dividing --vit-dim (default 4)',
      num('--vit-heads', 1, true),
    )
    .option(
      '--patch <px>',
      'ViT patch side, dividing --crop-size (default crop size / 8: 64 tokens)',
      num('--patch', 1, true),
    )
    .option('--epochs <n>', 'epochs', num('--epochs', 1, true), 10)
    .option('--batch <n>', 'crops per step (class-balanced)', num('--batch', 2, true), 32)
    .option(
      '--micro-batch <n>',
      'crops per forward/backward pass, gradients summed over the batch (memory; 0 = whole batch)',
      num('--micro-batch', 0, true),
      0,
    )
    .option('--lr <f>', 'AdamW learning rate', num('--lr', 0), 2e-3)
    .option('--weight-decay <f>', 'AdamW weight decay', num('--weight-decay', 0), 1e-4)
    .option('--val <f>', 'validation share per class', num('--val', 0), 0.15)
    .option('--test <f>', 'held-out test share per class', num('--test', 0), 0.15)
    .option('--seed <n>', 'split / sampling / augmentation seed', num('--seed', 0, true), 1)
    .option(
      '--time-budget <min>',
      'stop training after this many minutes (0 = none)',
      num('--time-budget', 0),
      0,
    )
    .action(async (given, command: Command) => {
      let o = given;
      if (given.resume !== undefined) {
        // The run's own options (data source, model, schedule): a resumed run continues that run.
        const file = join(given.resume, 'classify-options.json');
        try {
          o = { ...JSON.parse(readFileSync(file, 'utf8')), resume: given.resume, out: given.resume };
        } catch (e) {
          throw new InputError(
            `${file}: not a classifier run folder to resume (${(e as Error).message})`,
            file,
          );
        }
      } else if (o.out === undefined) {
        throw new UsageError('give --out <dir> (a new run folder) or --resume <runDir>');
      }
      if (![18, 34, 50, 101].includes(o.depth))
        throw new UsageError(`--depth must be 18, 34, 50 or 101, got ${o.depth}`);
      const arch = o.arch ?? 'resnet';
      if (!CLASSIFIER_ARCHS.includes(arch))
        throw new UsageError(`--arch must be ${CLASSIFIER_ARCHS.join(' or ')}, got '${arch}'`);
      const vitFlags = {
        vitDim: '--vit-dim',
        vitDepth: '--vit-depth',
        vitHeads: '--vit-heads',
        patch: '--patch',
      };
      const vit = { dim: o.vitDim, depth: o.vitDepth, heads: o.vitHeads, patch: o.patch };
      if (arch === 'vit') {
        const resnetOnly = ['depth', 'width'].filter((k) => command.getOptionValueSource(k) === 'cli');
        if (resnetOnly.length > 0)
          throw new UsageError(
            `${resnetOnly.map((k) => `--${k}`).join(' and ')} ${resnetOnly.length > 1 ? 'are ResNet options' : 'is a ResNet option'}; size the ViT with --vit-dim, --vit-depth, --vit-heads, --patch`,
          );
        try {
          resolveVitOptions(o.cropSize, vit, {
            dim: '--vit-dim',
            depth: '--vit-depth',
            heads: '--vit-heads',
            patch: '--patch',
            mlpRatio: 'the MLP ratio',
            cropSize: '--crop-size',
          });
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
      } else {
        const given = Object.keys(vitFlags).filter((k) => o[k] !== undefined);
        if (given.length > 0)
          throw new UsageError(
            `${given.map((k) => vitFlags[k as keyof typeof vitFlags]).join(', ')} ${given.length > 1 ? 'are ViT options' : 'is a ViT option'}: add --arch vit`,
          );
      }
      const say = (s: string) => console.log(s);
      await setUpEngine({ backend: 'auto', nativeKernels: true }, say);
      const { readCropSource } = await import('./sources.js');
      const { trainClassifier } = await import('./train-classifier.js');
      const t0 = performance.now();
      const data = await readCropSource({ ...o, cropSize: o.cropSize, margin: o.margin, seed: o.seed });
      say(`read ${data.crops.length} crops in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const r = await trainClassifier(data, {
        out: o.out,
        cropSize: o.cropSize,
        margin: o.folders !== undefined ? 0 : o.margin,
        arch,
        depth: o.depth,
        width: o.width,
        ...(arch === 'vit'
          ? { vit: Object.fromEntries(Object.entries(vit).filter(([, v]) => v !== undefined)) }
          : {}),
        epochs: o.epochs,
        batch: o.batch,
        microBatch: o.microBatch ?? 0,
        lr: o.lr,
        weightDecay: o.weightDecay,
        seed: o.seed,
        val: o.val,
        test: o.test,
        timeBudgetMin: o.timeBudget,
        resume: o.resume !== undefined,
        ...(o.resume === undefined ? { commandOptions: o } : {}),
        signal: stopOnSignals(),
        say,
      });
      say(
        `test: balanced accuracy ${r.test.balancedAccuracy.toFixed(3)}, macro-F1 ${r.test.macroF1.toFixed(3)}, accuracy ${r.test.accuracy.toFixed(3)} (${r.split.test} crops; ${r.steps} steps, ${r.trainSeconds.toFixed(0)} s training)`,
      );
      say(`run folder: ${o.out} (report.md, confusion.svg)`);
    });
  cls
    .command('export <runDir>')
    .description(
      'export a classifier run to ONNX with its metadata (class names, crop size, crop rule, normalisation)',
    )
    .option('--out <file>', 'ONNX file (default <runDir>/classifier.onnx)')
    .action(async (runDir: string, o) => {
      await setUpEngine({ backend: 'auto', nativeKernels: false }, () => {});
      const { exportClassifierOnnx } = await import('./export-classifier.js');
      const out = o.out ?? join(runDir, 'classifier.onnx');
      const r = await exportClassifierOnnx(runDir, out);
      console.log(`wrote ${out} (${r.bytes} bytes, ${r.classes} classes)`);
    });
}
