#!/usr/bin/env node
/**
 * The measurements behind @bmc/models' model card, written to packages/models/results/*.json with the
 * commands, the machine (lscpu model + flags) and the load average, so that every figure in the card
 * comes from a committed result file (test/card.test.ts checks it).
 *
 *   node packages/models/train/measure.mjs heldout <shipped run> <tiny-scratch run>
 *       AP / AP50 / AP75 of the shipped model and of the tiny preset trained from scratch for the same
 *       wall time, on the public test split (TXL-PBC test without the held-out source) and on the
 *       held-out source's test images. -> results/heldout.json
 *   node packages/models/train/measure.mjs finetune [--budgets 2,5,10]
 *       the held-out-source task (heldout-finetune.yaml): --init blood-smear against from scratch, each
 *       budget and arm one `bmc train --time-budget`, all started together so that they share the
 *       machine alike; then `bmc eval --split test` of each. -> results/finetune.json
 *   node packages/models/train/measure.mjs finetune-val
 *       the same runs' figures read back from their logs: the AP of the one validation each run makes
 *       when its budget ends (the task's 100 validation images), without the test evaluations, which
 *       take longer than the trainings on a loaded 2-core machine. -> results/finetune.json
 *   node packages/models/train/measure.mjs train <run> [log] [name] [command]
 *       a training run's wall time, steps, validations, machine and load -> results/<name>.json
 * Run from anywhere; paths are the repository's.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../..');
const bmc = join(repo, 'apps/train/bin/bmc.mjs');
const results = join(here, '..', 'results');
const work = join(repo, 'runs/models/measure');

const lscpu = execFileSync('lscpu', { encoding: 'utf8' });
const field = (k) => lscpu.match(new RegExp(`^${k}:\\s*(.*)$`, 'm'))?.[1]?.trim();
const machine = { model: field('Model name'), cpus: Number(field('CPU\\(s\\)')), flags: field('Flags') };
const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

function run(args, log) {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [bmc, ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
    });
    p.stderr.on('data', (d) => {
      out += d;
    });
    p.on('close', (code) => {
      if (log) writeFileSync(log, out);
      code === 0 ? res(out) : rej(new Error(`bmc ${args.join(' ')} exited ${code}:\n${out.slice(-2000)}`));
    });
  });
}

const parseEval = (out) => {
  const m = out.match(/AP ([\d.]+)\s+AP50 ([\d.]+)\s+AP75 ([\d.]+)/);
  if (!m) throw new Error(`no AP line in:\n${out.slice(-1500)}`);
  return { AP: Number(m[1]), AP50: Number(m[2]), AP75: Number(m[3]) };
};

const writeResult = (name, value) => {
  mkdirSync(results, { recursive: true });
  const file = join(results, `${name}.json`);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
  console.log(`wrote ${relative(repo, file)}`);
};

/** A run folder that `bmc eval` reads: the checkpoint's own config with another dataset. */
function evalDir(name, checkpoint, dataPath) {
  const state = JSON.parse(readFileSync(join(checkpoint, 'state.json'), 'utf8'));
  const config = { ...state.config, data: { ...state.config.data, path: dataPath } };
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  // JSON is YAML: config.yaml holds the JSON text.
  writeFileSync(join(dir, 'config.yaml'), `${JSON.stringify(config, null, 2)}\n`);
  cpSync(checkpoint, join(dir, 'best'), { recursive: true });
  // The report that bmc eval writes draws the run's loss curves from its log.
  const log = join(checkpoint, '..', 'log.jsonl');
  writeFileSync(join(dir, 'log.jsonl'), existsSync(log) ? readFileSync(log) : '');
  return dir;
}

const bestOf = (runDir) => {
  const r = resolve(runDir);
  if (existsSync(join(r, 'best', 'manifest.json'))) return join(r, 'best');
  const steps = readdirSync(join(r, 'checkpoints')).sort().reverse();
  return join(r, 'checkpoints', steps[0]);
};

const lastStep = (runDir) => {
  const lines = readFileSync(join(runDir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const steps = lines.filter((l) => l.event === 'step');
  return { steps: steps.at(-1)?.step ?? 0, epochs: steps.at(-1)?.epoch ?? 0 };
};

const [what, ...args] = process.argv.slice(2);
const started = new Date().toISOString();
const loadStart = load();
if (what === 'heldout') {
  const [shipped, scratch] = args;
  if (!shipped || !scratch) throw new Error('usage: measure.mjs heldout <shipped run> <tiny-scratch run>');
  const models = { shipped: bestOf(shipped), 'tiny-scratch': bestOf(scratch) };
  const sets = {
    'public-test': 'packages/models/train/splits/shipped.yaml',
    'heldout-test': 'packages/models/train/splits/heldout.yaml',
  };
  const jobs = [];
  for (const [m, ckpt] of Object.entries(models)) {
    for (const [s, data] of Object.entries(sets)) {
      const dir = evalDir(`eval-${m}-${s}`, ckpt, data);
      const args = ['eval', dir, '--split', 'test'];
      jobs.push(
        run(args, join(dir, 'eval.log')).then((out) => ({
          model: m,
          set: s,
          command: `bmc ${args.join(' ')}`,
          ...parseEval(out),
        })),
      );
    }
  }
  const rows = await Promise.all(jobs);
  const info = (r) => ({ run: relative(repo, resolve(r)), ...lastStep(resolve(r)) });
  writeResult('heldout', {
    what: 'COCO AP / AP50 / AP75 (bmc eval, pycocotools-identical) of the shipped model and of the tiny preset trained from scratch for the same wall time',
    started,
    ended: new Date().toISOString(),
    machine,
    loadAverage: { start: loadStart, end: load() },
    models: { shipped: info(shipped), 'tiny-scratch': info(scratch) },
    sets: {
      'public-test':
        'TXL-PBC test split without the held-out source (94 images; contains BCCD test-like fields and PBC)',
      'heldout-test': 'the held-out 575x575 source, 200 test images (make-splits.mjs)',
    },
    rows,
  });
} else if (what === 'finetune') {
  const b = args.indexOf('--budgets');
  const budgets = (b >= 0 ? args[b + 1] : '2,5,10').split(',').map(Number);
  const runs = join(work, 'finetune');
  mkdirSync(runs, { recursive: true });
  const arms = { 'init-blood-smear': ['--init', 'blood-smear'], scratch: [] };
  const trainings = [];
  for (const budget of budgets) {
    for (const [arm, extra] of Object.entries(arms)) {
      const name = `${arm}-${budget}min`;
      const args = [
        'train',
        '--config',
        'packages/models/train/heldout-finetune.yaml',
        '--set',
        `name=${name}`,
        '--time-budget',
        String(budget),
        '--runs',
        relative(repo, runs),
        '--no-progress',
        ...extra,
      ];
      trainings.push(
        run(args, join(runs, `${name}.log`)).then(() => {
          const dir = readdirSync(runs)
            .filter((d) => d.startsWith(`${name}-`))
            .sort()
            .at(-1);
          return { arm, budgetMin: budget, command: `bmc ${args.join(' ')}`, run: join(runs, dir) };
        }),
      );
    }
  }
  const trained = await Promise.all(trainings);
  const loadAfterTraining = load();
  const rows = await Promise.all(
    trained.map(async (t) => {
      const args = ['eval', t.run, '--split', 'test'];
      const out = await run(args, join(t.run, 'eval.log'));
      return {
        ...t,
        run: relative(repo, t.run),
        ...lastStep(t.run),
        evalCommand: `bmc ${args.join(' ')}`,
        ...parseEval(out),
      };
    }),
  );
  writeResult('finetune', {
    what: 'held-out-source task: fine-tuning from the shipped model (--init blood-smear) against training from scratch, same config and wall budget; COCO AP on the held-out test images (bmc eval --split test, best/ checkpoint)',
    started,
    ended: new Date().toISOString(),
    machine,
    loadAverage: { start: loadStart, afterTraining: loadAfterTraining, end: load() },
    concurrency: `all ${trained.length} trainings ran at the same time on the same cores, then all evaluations`,
    rows,
  });
} else if (what === 'heldout-collect') {
  // The heldout evaluations read back from the eval.log each one wrote (for a measurement whose
  // parent was stopped); the shipped and tiny runs as given.
  const [shipped, scratch] = args;
  const rows = [];
  for (const m of ['shipped', 'tiny-scratch']) {
    for (const s of ['public-test', 'heldout-test']) {
      const dir = join(work, `eval-${m}-${s}`);
      const log = join(dir, 'eval.log');
      if (!existsSync(log)) continue;
      rows.push({
        model: m,
        set: s,
        command: `bmc eval ${dir} --split test`,
        ...parseEval(readFileSync(log, 'utf8')),
      });
    }
  }
  const info = (r) => ({ run: relative(repo, resolve(r)), ...lastStep(resolve(r)) });
  writeResult('heldout', {
    what: 'COCO AP / AP50 / AP75 (bmc eval, pycocotools-identical) of the shipped model and of the tiny preset trained from scratch for the same wall time',
    started,
    machine,
    loadAverage: { atCollect: loadStart },
    models: { shipped: info(shipped), 'tiny-scratch': info(scratch) },
    sets: {
      'public-test': 'TXL-PBC test split without the held-out source (94 images)',
      'heldout-test': 'the held-out 575x575 source, 200 test images (make-splits.mjs)',
    },
    rows,
  });
} else if (what === 'finetune-val') {
  // The same runs read back from their logs: each run validates once, when its budget ends, on the
  // task's 100 validation images (nothing is selected on them: best/ is that one checkpoint), so this
  // AP is a held-out figure too, available before the slower test-set evaluations end.
  const runs = join(work, 'finetune');
  const rows = readdirSync(runs)
    .filter((d) => /^(init-blood-smear|scratch)-\d+min-/.test(d))
    .sort()
    .map((d) => {
      const [, arm, budget] = /^(init-blood-smear|scratch)-(\d+)min-/.exec(d);
      const dir = join(runs, d);
      const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const val = lines.filter((l) => l.event === 'eval').at(-1);
      const stop = lines.find((l) => l.event === 'stop');
      const config = lines[0].config;
      return {
        arm,
        budgetMin: Number(budget),
        command: `bmc train --config packages/models/train/heldout-finetune.yaml --set name=${arm}-${budget}min --time-budget ${budget}${arm === 'scratch' ? '' : ' --init blood-smear'}`,
        run: relative(repo, dir),
        ...lastStep(dir),
        trainingLoopSeconds: stop?.seconds,
        split: `${config.data.valSplit} (the task's 100 validation images)`,
        AP: val?.AP,
        AP50: val?.AP50,
        AP75: val?.AP75,
      };
    });
  writeResult('finetune', {
    what: 'held-out-source task: fine-tuning from the shipped model (--init blood-smear) against training from scratch, same config and wall budget; COCO AP of the final weights of each run on the validation images of the task (its only validation, so nothing was selected on them)',
    started,
    machine,
    loadAverage: { atSummary: loadStart },
    concurrency:
      'all 6 trainings ran at the same time on the same cores (measure.mjs finetune), with 4 evaluations of heldout.json part of the time',
    rows: rows.filter((r) => r.AP !== undefined),
    // Runs without a validation yet (still running, or stopped before it), by name.
    notMeasured: rows.filter((r) => r.AP === undefined).map((r) => r.run),
  });
} else if (what === 'train') {
  // The shipped model's training: wall time, steps, machine and load from train-model.sh's log.
  const [
    runDir,
    logFile = 'runs/models/train-model.log',
    name = 'train',
    command = 'pnpm --filter @bmc/models train-model  (BUDGET=45)',
  ] = args;
  if (!runDir) throw new Error('usage: measure.mjs train <run> [its log] [result name] [command]');
  const log = readFileSync(resolve(repo, logFile), 'utf8');
  const loads = [...log.matchAll(/load(?: at (?:start|end):)? ([\d.]+) ([\d.]+) ([\d.]+)/g)].map((m) =>
    m.slice(1, 4).map(Number),
  );
  const lines = readFileSync(join(resolve(runDir), 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const steps = lines.filter((l) => l.event === 'step');
  const vals = lines.filter((l) => l.event === 'eval');
  const stop = lines.find((l) => l.event === 'stop');
  const seconds = Number(log.match(/(?:trained .* in|after) (\d+) s/)?.[1]);
  writeResult(name, {
    what: 'a training run: wall time from the command start to the end of training and its final validation',
    command,
    config: lines[0]?.config?.name,
    run: relative(repo, resolve(runDir)),
    started: steps[0]?.time,
    lastStep: steps.at(-1)?.time,
    wallSeconds: seconds,
    wallMinutes: Math.round((seconds / 60) * 10) / 10,
    steps: steps.at(-1)?.step,
    epochs: steps.at(-1)?.epoch,
    imagesSeen: (steps.at(-1)?.step ?? 0) * 4,
    medianImagesPerSecond: steps.map((s) => s.imagesPerSecond).sort((a, b) => a - b)[steps.length >> 1],
    stop: stop
      ? { reason: stop.reason, step: stop.step, bestStep: stop.bestStep, trainingLoopSeconds: stop.seconds }
      : null,
    validations: vals.map(({ time, event, operatingPoint, ...v }) => ({ ...v, operatingPoint })),
    machine,
    loadAverage: { start: loads[0], end: loads[1] },
  });
} else {
  console.error('usage: measure.mjs heldout <shipped run> <tiny-scratch run> | finetune [--budgets 2,5,10]');
  process.exit(2);
}
