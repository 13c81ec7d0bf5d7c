import { Command, InvalidArgumentError, Option } from 'commander';
import { dataCheck, dataConvert, dataSynth, formatStats, readDataset } from './commands/data.js';
import { doctor, formatDoctor } from './commands/doctor.js';

/** Exit codes: 0 ok, 1 failure while running, 2 bad usage or invalid input/config. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got '${v}'`);
  return n;
};

const program = new Command('bmc')
  .description('Train, evaluate, export and run a bone marrow cell detector')
  .showHelpAfterError()
  .configureOutput({ outputError: (s, write) => write(s) });

program
  .command('doctor')
  .description('report the TensorFlow.js backend in use and why, versions, CPU features, GPU readiness')
  .option('--json', 'print JSON')
  .action(async (o: { json?: boolean }) => {
    const r = await doctor();
    console.log(o.json ? JSON.stringify(r, null, 2) : formatDoctor(r));
  });

const formatOption = () =>
  new Option('--format <format>', 'dataset format (default: detected)').choices(['coco', 'voc', 'yolo']);
const data = program.command('data').description('dataset tools: check, convert, stats, synth');

data
  .command('check <path>')
  .description('validate annotations and images; lists every problem with file and line/object')
  .addOption(formatOption())
  .option('--split <name>', 'VOC ImageSets / YOLO split')
  .addOption(
    new Option('--policy <policy>', 'strict: stop at the first problem')
      .choices(['strict', 'lenient'])
      .default('lenient'),
  )
  .action(async (path: string, o) => {
    const r = await dataCheck(path, o);
    console.log(r.text);
    process.exitCode = r.ok ? EXIT.ok : EXIT.failed;
  });

data
  .command('convert <path>')
  .description('convert VOC / YOLO / COCO to one COCO JSON')
  .requiredOption('--out <file>', 'COCO JSON to write')
  .addOption(formatOption())
  .option('--split <name>', 'VOC ImageSets / YOLO split')
  .option('--single-class', 'collapse all categories into one "cell" class')
  .action(async (path: string, o) => console.log(await dataConvert(path, o.out, o)));

data
  .command('stats <path>')
  .description('image and box counts per category, sizes')
  .addOption(formatOption())
  .option('--split <name>', 'VOC ImageSets / YOLO split')
  .action(async (path: string, o) => console.log(formatStats(await readDataset(path, o), path)));

data
  .command('synth')
  .description('generate synthetic bone marrow smears (PNG + COCO JSON per split)')
  .requiredOption('--out <dir>', 'output folder')
  .option('--train <n>', 'training images', int('--train'), 200)
  .option('--val <n>', 'validation images', int('--val'), 50)
  .option('--test <n>', 'test images', int('--test'), 50)
  .option('--seed <n>', 'generator seed', int('--seed'), 1)
  .option('--size <px>', 'image side', int('--size'), 320)
  .addOption(
    new Option('--categories <mode>', 'one "cell" class or the cell type')
      .choices(['cell', 'type'])
      .default('cell'),
  )
  .action(async (o) => console.log(await dataSynth(o.out, o)));

export async function main(argv: string[]): Promise<void> {
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: string };
    // Our own errors name the file and the problem: print the message, not a stack.
    console.error(`bmc: ${e.message}`);
    if (process.env.BMC_DEBUG) console.error(e.stack);
    process.exitCode = /config|invalid|format|no such/i.test(e.message) ? EXIT.usage : EXIT.failed;
  }
}

await main(process.argv);
