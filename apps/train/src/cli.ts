import { EXIT_CODES, exitCodeFor, printable } from '@bmc/core';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ablation } from './commands/ablation.js';
import { dataCheck, dataConvert, dataSynth, formatStats, readDataset } from './commands/data.js';
import { doctor, formatDoctor } from './commands/doctor.js';
import { registerLabelCommands } from './commands/label/register.js';
import { demo, evaluateSplit, exportRunOnnx, loadRun } from './commands/pipeline.js';
import { exportInt8, positiveInt } from './commands/quantize.js';
import { loadConfig } from './config/load.js';
import { presetNames } from './config/presets.js';
import { writeRunReport } from './report/run-report.js';
import { describeOperatingPoint } from './train/operating-point.js';
import { loadRunConfig } from './train/pixel-scale.js';
import { setUpEngine, train } from './train/trainer.js';

/** Exit codes by kind of error (@bmc/core `errorKind`): 0 ok, 1 failed work, 2 bad usage or bad input. */
export const EXIT = EXIT_CODES;

const int =
  (name: string, min = Number.NEGATIVE_INFINITY) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got '${v}'`);
    if (n < min) throw new InvalidArgumentError(`${name} must be at least ${min}, got ${n}`);
    return n;
  };

const program = new Command('bmc')
  .description('Train, evaluate, export and run a bone marrow cell detector')
  .showHelpAfterError()
  // Commander throws instead of exiting, so main() maps its errors to exit code 2 (usage); the
  // setting is inherited by every subcommand added below (and by detect/serve).
  .exitOverride()
  .configureOutput({ outputError: (s, write) => write(printable(s)) });

program
  .command('doctor')
  .description('report the TensorFlow.js backend in use and why, versions, CPU features, GPU readiness')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }) => {
    const r = await doctor();
    console.log(o.json ? JSON.stringify(r, null, 2) : formatDoctor(r));
  });

/**
 * Ctrl-C or SIGTERM ends training cleanly: the current step finishes, the final weights are validated
 * and checkpointed. A second signal exits at once (the newest checkpoint stays intact).
 */
function stopOnSignals(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    console.error(
      `\n${name}: stopping after this step (validation and a checkpoint follow; send it again to quit now)`,
    );
    controller.abort();
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  return controller.signal;
}

const collect = (v: string, prev: string[]) => [...prev, v];

program
  .command('train')
  .description('train a detector; writes a run folder with checkpoints, a JSONL log and a report')
  .option('--preset <name>', `start from a preset (${presetNames().join(', ')})`)
  .option('--config <file>', 'YAML or JSON config (keys override the preset)')
  .option('--set <key=value>', 'override one config key, e.g. --set optim.lr=0.01 (repeatable)', collect, [])
  .option('--data <path>', 'dataset folder or COCO JSON (format detected) instead of synthetic smears')
  .option('--epochs <n>', 'epochs (at least 1)', int('--epochs', 1))
  .option('--batch-size <n>', 'images per step', int('--batch-size', 1))
  .option('--time-budget <minutes>', 'stop cleanly (with a checkpoint) after this many minutes', Number)
  .option('--runs <dir>', 'parent folder for the run', 'runs')
  .option('--resume <runDir>', 'continue a run from its newest readable checkpoint')
  .option(
    '--init <source>',
    'start from a whole detector: a run folder (its best/ or newest checkpoint), a checkpoint folder or a model name',
  )
  .option(
    '--freeze-backbone-steps <n>',
    'keep the backbone frozen for the first n steps (model.backbone.freezeSteps)',
    int('--freeze-backbone-steps', 0),
  )
  .option('--no-progress', 'no progress bar')
  .action(async (o) => {
    const { detectFormat } = await import('./commands/data.js');
    const cfg = o.resume
      ? loadRunConfig(`${o.resume}/config.yaml`)
      : loadConfig({
          preset: o.preset ?? (o.config ? undefined : 'tiny'),
          file: o.config,
          set: o.set,
          overrides: {
            ...(o.data ? { data: { format: detectFormat(o.data), path: o.data } } : {}),
            ...(o.freezeBackboneSteps !== undefined
              ? { model: { backbone: { freezeSteps: o.freezeBackboneSteps } } }
              : {}),
            optim: {
              ...(o.epochs !== undefined ? { epochs: o.epochs } : {}),
              ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
            },
            ...(o.timeBudget !== undefined ? { run: { timeBudgetMin: o.timeBudget } } : {}),
          },
        });
    const out = await train(cfg, {
      runsDir: o.runs,
      ...(o.resume ? { resume: o.resume } : {}),
      ...(o.init ? { init: o.init } : {}),
      progress: o.progress && Boolean(process.stdout.isTTY),
      signal: stopOnSignals(),
    });
    console.log(`run folder: ${out.paths.root}`);
  });

program
  .command('demo')
  .description(
    'the main job: synthetic smears -> train the tiny model on CPU -> evaluate -> export ONNX -> detect -> report',
  )
  .option('--set <key=value>', 'override a config key of the tiny preset (repeatable)', collect, [])
  .option('--runs <dir>', 'parent folder for the run', 'runs')
  .option('--no-progress', 'no progress bar')
  .action(async (o) => {
    const r = await demo({
      runsDir: o.runs,
      set: o.set,
      progress: o.progress && Boolean(process.stdout.isTTY),
    });
    console.log(`run folder: ${r.root}`);
  });

program
  .command('eval <runDir>')
  .description("evaluate a run's checkpoint on a split and write the report")
  .addOption(new Option('--split <name>', 'split').choices(['train', 'val', 'test']).default('test'))
  .addOption(new Option('--weights <which>', 'checkpoint').choices(['best', 'last']).default('best'))
  .action(async (runDir: string, o) => {
    // Backend first: the model is built on whatever backend is active.
    const backend = await setUpEngine(loadConfig({ file: `${runDir}/config.yaml` }).run, () => {});
    const run = await loadRun(runDir, o.weights);
    const ev = await evaluateSplit(run, run.splits[o.split as 'test']);
    const s = ev.result.stats;
    console.log(
      `${o.split}: AP ${s[0]!.toFixed(4)}  AP50 ${s[1]!.toFixed(4)}  AP75 ${s[2]!.toFixed(4)}  (${run.weights})`,
    );
    const report = await writeRunReport({
      paths: run.paths,
      config: run.config,
      test: ev,
      testSplit: run.splits[o.split as 'test'],
      backend: backend.name,
      peakRssMb: process.memoryUsage().rss / 2 ** 20,
      model: run.detector.model,
      ...(run.operatingPoint ? { operatingPoint: run.operatingPoint } : {}),
    });
    console.log(`report: ${report}`);
  });

program
  .command('export <runDir>')
  .description(
    "export a run's network as a self-describing ONNX file (opset 17); with --int8, a statically quantised one (a run folder or a bmc .onnx file)",
  )
  .option('--out <file>', 'ONNX file to write (default <runDir>/model.onnx, with --int8 model-int8.onnx)')
  .addOption(new Option('--weights <which>', 'checkpoint').choices(['best', 'last']).default('best'))
  .option(
    '--int8',
    'INT8 QDQ model: int8 per-channel conv weights, uint8 activations calibrated on --calibration',
  )
  .option('--calibration <folder>', 'images like the ones the model will see (with --int8)')
  .addOption(
    new Option('--calibration-method <name>', 'activation ranges: min/max seen, or a percentile of each tail')
      .choices(['minmax', 'percentile'])
      .default('minmax'),
  )
  .option(
    '--calibration-images <n>',
    'at most this many calibration images, spread over the folder',
    positiveInt,
    100,
  )
  .action(async (runDir: string, o) => {
    if (o.int8 || o.calibration) {
      await exportInt8(runDir, o);
      return;
    }
    await setUpEngine(loadConfig({ file: `${runDir}/config.yaml` }).run, () => {});
    const run = await loadRun(runDir, o.weights);
    const out = o.out ?? `${run.paths.root}/model.onnx`;
    const bytes = exportRunOnnx(run, out);
    console.log(`wrote ${out} (${(bytes / 2 ** 20).toFixed(2)} MB) from ${run.weights}`);
    console.log(
      run.operatingPoint
        ? `operating point: ${describeOperatingPoint(run.operatingPoint)} on validation at step ${run.operatingPoint.step}; AP threshold (COCO results) stays at the candidate threshold`
        : 'no operating point in this checkpoint (not validated, or trained before bmc recorded one): counts will use the candidate threshold; validate and re-export to record one',
    );
  });

program
  .command('ablation')
  .description(
    'train the published ablation grid and the assigner comparison under one budget; one combined table',
  )
  .option('--preset <name>', 'base preset', 'tiny')
  .option('--set <key=value>', 'override a config key for every variant (repeatable)', collect, [])
  .option('--budget <minutes>', 'training minutes per variant', Number)
  .option('--only <text>', 'run only variants whose name contains this (repeatable)', collect, [])
  .option('--runs <dir>', 'parent folder', 'runs')
  .action(async (o) => {
    const r = await ablation({
      preset: o.preset,
      set: o.set,
      budgetMin: o.budget,
      runsDir: o.runs,
      ...(o.only.length ? { only: o.only } : {}),
    });
    console.log(`${r.table}

written to ${r.dir}`);
  });

const formatOption = () =>
  new Option('--format <format>', 'dataset format (default: detected)').choices(['coco', 'voc', 'yolo']);
const data = program.command('data').description('dataset tools: check, convert, stats, synth');

data
  .command('check <path>')
  .description(
    'validate annotations and images (decoded fully); lists every problem with file and line/object',
  )
  .addOption(formatOption())
  .option('--split <name>', 'VOC ImageSets / YOLO split')
  .option('--fast', 'read image headers only (a truncated or corrupt image body is not found)')
  .option('--allow-outside-root', 'read COCO images whose file_name lies outside the dataset folder')
  .addOption(
    new Option('--policy <policy>', 'strict: stop at the first problem')
      .choices(['strict', 'lenient'])
      .default('lenient'),
  )
  .action(async (path: string, o) => {
    const r = await dataCheck(path, o);
    console.log(printable(r.text));
    // Problems found in the user's data are bad input, like any other command's.
    process.exitCode = r.ok ? EXIT.ok : EXIT.input;
  });

data
  .command('convert <path>')
  .description('convert VOC / YOLO / COCO to one COCO JSON')
  .requiredOption('--out <file>', 'COCO JSON to write')
  .addOption(formatOption())
  .option('--allow-outside-root', 'read COCO images whose file_name lies outside the dataset folder')
  .option('--split <name>', 'VOC ImageSets / YOLO split')
  .option('--single-class', 'collapse all categories into one "cell" class')
  .action(async (path: string, o) => console.log(await dataConvert(path, o.out, o)));

data
  .command('stats <path>')
  .description('image and box counts per category, sizes')
  .addOption(formatOption())
  .option('--split <name>', 'VOC ImageSets / YOLO split')
  .action(async (path: string, o) => console.log(printable(formatStats(await readDataset(path, o), path))));

data
  .command('synth')
  .description('generate synthetic bone marrow smears (PNG + COCO JSON per split)')
  .requiredOption('--out <dir>', 'output folder')
  .option('--train <n>', 'training images', int('--train'), 200)
  .option('--val <n>', 'validation images', int('--val'), 50)
  .option('--test <n>', 'test images', int('--test'), 50)
  .option('--seed <n>', 'generator seed', int('--seed'), 1)
  .option('--size <px>', 'image side', int('--size'), 320)
  .option(
    '--width <px>',
    'image width (default --size); cells keep their size, so large fields hold many',
    int('--width'),
  )
  .option('--height <px>', 'image height (default --size)', int('--height'))
  .addOption(
    new Option('--categories <mode>', 'one "cell" class or the cell type')
      .choices(['cell', 'type'])
      .default('cell'),
  )
  .action(async (o) => console.log(await dataSynth(o.out, o)));

data
  .command('slide')
  .description('generate a synthetic whole slide: smear fields on glass, as a tiled pyramidal BigTIFF')
  .requiredOption('--out <file>', 'output .tif')
  .option('--side <px>', 'slide width and height', int('--side', 320), 40_000)
  .option('--fields <n>', 'smear fields on the slide', int('--fields', 1), 16)
  .option('--seed <n>', 'generator seed', int('--seed'), 1)
  .addOption(
    new Option('--compression <c>', 'TIFF tile compression').choices(['deflate', 'jpeg']).default('jpeg'),
  )
  .action(async (o) => {
    const { dataSlide } = await import('./commands/data-slide.js');
    console.log(await dataSlide(o.out, o));
  });

registerLabelCommands(program, async () =>
  (await import('./commands/default-model.js')).shippedDefaultModel(),
);

const { registerClassifyCommands } = await import('./classify/commands.js');
registerClassifyCommands(program, stopOnSignals);

// The light entry: onnxruntime, sharp and fastify load only when detect/serve run.
const { registerInferCommands } = await import('@bmc/infer/commands');
registerInferCommands(program, {
  defaultModel: async () => (await import('./commands/default-model.js')).shippedDefaultModel(),
});

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

/**
 * Prints an error that ended a command and returns its exit code. Commander has already printed
 * its own (usage) errors and the help; our errors name the file and the problem, so the message
 * is printed without a stack (set BMC_DEBUG=1 for one), escaped for the terminal because it may
 * quote a user's file names or contents.
 */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  const e = err instanceof Error ? err : new Error(String(err));
  console.error(`bmc: ${printable(e.message)}`);
  if (process.env.BMC_DEBUG) console.error(e.stack);
  return exitCodeFor(err);
}

await main(process.argv);
