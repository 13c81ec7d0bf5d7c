#!/usr/bin/env node
// The ranking experiment of issue 21, from one command:
//
//   node apps/train/bench/active-learning.mjs [--pool 100] [--rounds 3] [--minutes 2] [--val 40] [--work /tmp/bmc-al]
//
// A pool of TXL-PBC training images (seeded shuffle, `--pool` of them); round 0 labels a random 10%
// (the same images for both strategies); each later round adds 10% of the pool chosen by
// `bmc label rank` (with the model trained in the previous round) or at random
// (`bmc label rank --strategy random`). The "hematologist" is TXL-PBC's ground truth: the chosen
// images' true boxes go in through `bmc label import`, as a corrected COCO export would. Each round
// trains a fresh tiny detector for the same time budget (`bmc train --preset tiny --time-budget`),
// validated and evaluated on `--val` TXL-PBC validation images (`bmc eval --split test`), then
// exported for the next ranking. Everything runs through bin/bmc.mjs, as a lab would run it.
// Writes bench/measured/active-learning.json and .svg (AP50 / AP75 against labelled images).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linkImage, readYolo, writeCoco } from '@bmc/data';
import { pickRandom } from '../dist/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = join(HERE, '..', 'bin', 'bmc.mjs');
const TXL = join(HERE, '..', '..', '..', '..', 'shared', 'data', 'txl-pbc');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const POOL = Number(arg('pool', 100));
const ROUNDS = Number(arg('rounds', 3));
const MINUTES = Number(arg('minutes', 2));
const VAL = Number(arg('val', 40));
const WORK = arg('work', '/tmp/bmc-al');
const SEED = Number(arg('seed', 21));
const STEP = Math.max(1, Math.round(POOL / 10));

/** The same seeded order `bmc label rank --strategy random` draws (mulberry32 + Fisher-Yates). */
const shuffle = (list, seed) => pickRandom(list.length, list.length, seed).map((k) => list[k]);

function bmc(args) {
  const t0 = Date.now();
  const out = execFileSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  console.error(`  bmc ${args.slice(0, 2).join(' ')} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  return out;
}

/** A COCO file of these images with their true boxes, images linked beside it (a "corrected export"). */
async function groundTruth(images, categories, dir) {
  mkdirSync(join(dir, 'images'), { recursive: true });
  const linked = [];
  for (const im of images) {
    const file = join(dir, 'images', basename(im.file));
    await linkImage(im.file, file);
    linked.push({ ...im, file });
  }
  await writeCoco({ categories, images: linked, report: { issues: [] } }, join(dir, 'gt.json'));
  return join(dir, 'gt.json');
}

if (process.argv.includes('--plot-only')) {
  // Redraw the committed result without rerunning it.
  const file = join(HERE, 'measured', 'active-learning.json');
  writeFileSync(join(HERE, 'measured', 'active-learning.svg'), plot(JSON.parse(readFileSync(file, 'utf8'))));
  process.exit(0);
}
rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const train = await readYolo(TXL, { split: 'train', policy: 'lenient' });
const val = await readYolo(TXL, { split: 'val', policy: 'lenient' });
const pool = shuffle(train.images, SEED).slice(0, POOL);
const byName = new Map(pool.map((im) => [basename(im.file), im]));
const valFile = join(WORK, 'val.json');
await writeCoco({ ...val, images: shuffle(val.images, SEED).slice(0, VAL) }, valFile);
mkdirSync(join(WORK, 'pool'), { recursive: true });
for (const im of pool) await linkImage(im.file, join(WORK, 'pool', basename(im.file)));
const first = pool.slice(0, STEP);

const results = { rank: [], random: [] };
const t0 = Date.now();
for (const strategy of ['rank', 'random']) {
  const root = join(WORK, strategy);
  const labels = join(root, 'labels');
  let chosen = first;
  for (let round = 0; round <= ROUNDS; round++) {
    console.error(`${strategy} round ${round}: ${chosen.length} new images`);
    const batch = join(root, `batch-${String(round).padStart(2, '0')}`);
    const gt = await groundTruth(chosen, train.categories, batch);
    bmc(['label', 'import', gt, '--into', labels, '--round', String(round)]);
    const runs = join(root, 'runs');
    bmc([
      'train',
      '--preset',
      'tiny',
      '--data',
      join(labels, 'dataset.json'),
      '--runs',
      runs,
      '--no-progress',
      '--time-budget',
      String(MINUTES),
      '--set',
      `data.valPath=${valFile}`,
      '--set',
      'data.allowOutsideRoot=true',
    ]);
    const run = join(runs, execFileSync('ls', ['-t', runs], { encoding: 'utf8' }).split('\n')[0]);
    const ev = bmc(['eval', run, '--split', 'test']);
    const m = /AP ([\d.]+)\s+AP50 ([\d.]+)\s+AP75 ([\d.]+)/.exec(ev);
    const labelled = (round + 1) * STEP;
    results[strategy].push({ round, labelled, ap: Number(m[1]), ap50: Number(m[2]), ap75: Number(m[3]) });
    bmc(['label', 'metric', labels, '--round', String(round), '--ap50', m[2], '--ap75', m[3], '--run', run]);
    console.error(`  AP50 ${m[2]} AP75 ${m[3]} with ${labelled} labelled images`);
    if (round === ROUNDS) break;
    const model = join(run, 'model.onnx');
    bmc(['export', run, '--out', model]);
    const next = join(root, `proposed-${round + 1}`);
    bmc([
      'label',
      'rank',
      '-m',
      model,
      join(WORK, 'pool'),
      '--dataset',
      labels,
      '--top',
      String(STEP),
      '--out',
      next,
      '--format',
      'coco',
      '--strategy',
      strategy,
      '--seed',
      String(SEED + round),
    ]);
    const picked = JSON.parse(execFileSync('cat', [join(next, 'batch.json')], { encoding: 'utf8' })).images;
    chosen = picked.map((p) => byName.get(p.name));
  }
}

const out = join(HERE, 'measured');
mkdirSync(out, { recursive: true });
const record = {
  what: 'AP50 / AP75 on TXL-PBC validation images against labelled images: bmc label rank vs random batches',
  command: `node apps/train/bench/active-learning.mjs --pool ${POOL} --rounds ${ROUNDS} --minutes ${MINUTES} --val ${VAL} --seed ${SEED}`,
  pool: POOL,
  batch: STEP,
  valImages: VAL,
  trainMinutesPerRound: MINUTES,
  results,
  // Round 0 trains on the same images for both strategies: the gap between them there is the
  // run-to-run noise of a time-budgeted run on a shared CPU, the yardstick for every other gap.
  noise: Math.abs(results.rank[0].ap50 - results.random[0].ap50),
  minutes: (Date.now() - t0) / 60000,
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  loadavg: loadavg(),
  date: new Date().toISOString(),
};
writeFileSync(join(out, 'active-learning.json'), `${JSON.stringify(record, null, 1)}\n`);
writeFileSync(join(out, 'active-learning.svg'), plot(record));
console.log(JSON.stringify(results));

function plot(r) {
  const W = 520;
  const H = 300;
  const L = 50;
  const B = 40;
  const xs = [...r.results.rank, ...r.results.random].map((p) => p.labelled);
  const ys = [...r.results.rank, ...r.results.random].flatMap((p) => [p.ap50, p.ap75]);
  const xmax = Math.max(...xs);
  const xmin = Math.min(...xs);
  const ymax = Math.max(0.05, ...ys) * 1.1;
  const X = (x) => L + ((x - xmin) / Math.max(1, xmax - xmin)) * (W - L - 20);
  const Y = (y) => H - B - (y / ymax) * (H - B - 20);
  const line = (pts, key, colour, dash) =>
    `<polyline fill="none" stroke="${colour}" stroke-width="2"${dash ? ' stroke-dasharray="5,4"' : ''} points="${pts
      .map((p) => `${X(p.labelled).toFixed(1)},${Y(p[key]).toFixed(1)}`)
      .join(' ')}"/>` +
    pts
      .map(
        (p) =>
          `<circle cx="${X(p.labelled).toFixed(1)}" cy="${Y(p[key]).toFixed(1)}" r="3" fill="${colour}"/>`,
      )
      .join('');
  const ticks = [...new Set(xs)]
    .map(
      (x) => `<text x="${X(x).toFixed(1)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${x}</text>`,
    )
    .join('');
  const yt = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => f * ymax)
    .map(
      (y) =>
        `<text x="${L - 6}" y="${Y(y).toFixed(1)}" font-size="11" text-anchor="end">${y.toFixed(2)}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="10" x2="${L}" y2="${H - B}" stroke="black"/>
${ticks}${yt}
<text x="${(W + L) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">labelled TXL-PBC training images</text>
${line(r.results.rank, 'ap50', '#c0392b')}${line(r.results.random, 'ap50', '#2c7fb8')}
${line(r.results.rank, 'ap75', '#c0392b', true)}${line(r.results.random, 'ap75', '#2c7fb8', true)}
<text x="${L + 10}" y="22" font-size="12" fill="#c0392b">ranked (bmc label rank)</text>
<text x="${L + 10}" y="38" font-size="12" fill="#2c7fb8">random</text>
<text x="${L + 10}" y="54" font-size="11">solid AP50, dashed AP75; ${r.valImages} val images, ${r.trainMinutesPerRound} min training per round</text>
</svg>
`;
}
