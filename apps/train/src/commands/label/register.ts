import { printable } from '@bmc/core';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { PROPOSAL_FORMATS, parseFormats } from './batch.js';

/**
 * The `bmc label` group: propose -> (people correct in CVAT / Label Studio / ...) -> import ->
 * rank -> propose the next batch. The heavy modules (onnxruntime, sharp) load when a command runs.
 */
export function registerLabelCommands(program: Command, defaultModel: () => Promise<{ path: string }>): void {
  const label = program
    .command('label')
    .description(
      'the annotation loop: propose pre-labels, import corrections, rank what to label next, status',
    );
  const model = async (m: string | undefined) => m ?? (await defaultModel()).path;
  const formats = () =>
    new Option('--format <list>', `comma-separated, from ${PROPOSAL_FORMATS.join(', ')}`)
      .default([...PROPOSAL_FORMATS], PROPOSAL_FORMATS.join(','))
      .argParser((v) => {
        try {
          return parseFormats(v);
        } catch (e) {
          throw new InvalidArgumentError((e as Error).message.replace(/^--format: /, ''));
        }
      });
  const prob = (name: string) => (v: string) => {
    const n = Number(v);
    if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError(`${name} must be a number in 0..1, got '${v}'`);
    return n;
  };
  const int = (name: string, min: number) => (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };

  const classifierHelp =
    'cell-type classifier ONNX (bmc classify export): each box is labelled with its type in every format';
  const classifierThresholdHelp =
    'below this type probability a box is labelled "unclassified" (default: 0.5)';

  label
    .command('propose <inputs...>')
    .description(
      'run the detector and write its boxes as pre-labels (COCO, VOC, YOLO, CVAT, Label Studio) into a batch folder',
    )
    .option('-m, --model <file>', 'bmc ONNX model (default: the shipped model)')
    .requiredOption('--out <dir>', 'batch folder to write')
    .addOption(formats())
    .option(
      '--score <t>',
      'counting threshold for proposals (default: the model operating point)',
      prob('--score'),
    )
    .option(
      '--ls-root <dir>',
      "Label Studio's LOCAL_FILES_DOCUMENT_ROOT: image paths are written relative to it",
      '.',
    )
    .option('--classifier <file>', classifierHelp)
    .option('--classifier-threshold <p>', classifierThresholdHelp, prob('--classifier-threshold'), 0.5)
    .action(async (inputs: string[], o) => {
      const { propose } = await import('./propose.js');
      const m = await propose({
        model: await model(o.model),
        inputs,
        out: o.out,
        formats: o.format,
        labelStudioRoot: o.lsRoot,
        ...(o.score !== undefined ? { scoreThreshold: o.score } : {}),
        ...(o.classifier ? { classifier: o.classifier, classifierThreshold: o.classifierThreshold } : {}),
      });
      const boxes = m.images.reduce((s, i) => s + i.proposals, 0);
      console.log(
        printable(
          `${o.out}: ${m.images.length} images, ${boxes} proposed boxes (score >= ${m.threshold.toFixed(3)})` +
            `${m.classifier ? `, cell types from ${m.classifier.version}` : ''}, ` +
            `formats ${m.formats.join(', ')}${m.failed.length ? `; ${m.failed.length} image(s) failed (failed.csv)` : ''}`,
        ),
      );
    });

  label
    .command('import <corrected>')
    .description(
      'validate corrected labels (CVAT XML, Label Studio export, COCO, VOC, YOLO) and merge them into the dataset',
    )
    .requiredOption('--into <dir>', 'the growing dataset folder (dataset.json + ledger.json + images/)')
    .addOption(
      new Option('--format <format>', 'default: detected').choices([
        'cvat',
        'labelstudio',
        'coco',
        'voc',
        'yolo',
      ]),
    )
    .option(
      '--images <dir>',
      'where the images of a CVAT / Label Studio file are (default: images/ beside it)',
    )
    .option('--batch <name>', "batch name (default: the batch folder's batch.json, else its folder name)")
    .option('--round <n>', 'round number (default: the batch round, else the next one)', int('--round', 0))
    .option('--accept-fixes', 'import although validation fixed problems (clipped or dropped boxes)')
    .option('--replace', 'overwrite images that are already labelled differently')
    .action(async (corrected: string, o) => {
      const { importCorrections } = await import('./import.js');
      const r = await importCorrections({ input: corrected, ...o });
      console.log(printable(r.text));
    });

  label
    .command('rank <inputs...>')
    .description(
      'score unlabelled smears by what a label would teach the model; write the top N as the next batch',
    )
    .option('-m, --model <file>', 'bmc ONNX model (default: the shipped model)')
    .option('--dataset <dir>', 'the labelled dataset folder: its images are skipped, the pool is recorded')
    .requiredOption('--top <n>', 'images in the batch', int('--top', 1))
    .requiredOption('--out <dir>', 'batch folder to write')
    .addOption(formats())
    .addOption(
      new Option('--strategy <s>', 'rank, or random (a baseline)')
        .choices(['rank', 'random'])
        .default('rank'),
    )
    .option('--seed <n>', 'seed for --strategy random', int('--seed', 0), 1)
    .option('--diversity <lambda>', 'diversity penalty weight, 0..1', prob('--diversity'), 0.5)
    .option('--score <t>', 'counting threshold (default: the model operating point)', prob('--score'))
    .option('--ls-root <dir>', "Label Studio's LOCAL_FILES_DOCUMENT_ROOT", '.')
    .option('--classifier <file>', classifierHelp)
    .option('--classifier-threshold <p>', classifierThresholdHelp, prob('--classifier-threshold'), 0.5)
    .action(async (inputs: string[], o) => {
      const { rank } = await import('./rank.js');
      const r = await rank({
        model: await model(o.model),
        inputs,
        ...(o.dataset ? { dataset: o.dataset } : {}),
        top: o.top,
        out: o.out,
        formats: o.format,
        strategy: o.strategy,
        seed: o.seed,
        diversity: o.diversity,
        labelStudioRoot: o.lsRoot,
        ...(o.score !== undefined ? { scoreThreshold: o.score } : {}),
        ...(o.classifier ? { classifier: o.classifier, classifierThreshold: o.classifierThreshold } : {}),
      });
      console.log(printable(`${o.out}: next batch of ${r.images.length} (${r.selection})\n${r.ranking}`));
    });

  label
    .command('status <dataset>')
    .description('labelled / unlabelled counts, rounds and the metric after each round')
    .option('--pool <dir...>', 'folders of unlabelled smears (default: those bmc label rank recorded)')
    .option('--json', 'print JSON')
    .action(async (dir: string, o) => {
      const { formatStatus, labelStatus } = await import('./status.js');
      const s = await labelStatus(dir, o.pool);
      console.log(o.json ? JSON.stringify(s, null, 2) : printable(formatStatus(dir, s)));
    });

  label
    .command('metric <dataset>')
    .description('record AP50 / AP75 measured after training on the labels up to a round (shown by status)')
    .requiredOption('--round <n>', 'round', int('--round', 0))
    .option('--ap50 <x>', 'AP at IoU 0.5', prob('--ap50'))
    .option('--ap75 <x>', 'AP at IoU 0.75', prob('--ap75'))
    .option('--run <dir>', 'the training run the metric came from')
    .action(async (dir: string, o) => {
      const { recordMetric } = await import('./status.js');
      console.log(await recordMetric(dir, o));
    });
}
