#!/usr/bin/env node
// The ranking experiment of issue 21, from one command:
//
//   pnpm --filter @bmc/train bench:active-learning            (the committed run)
//   node apps/train/bench/active-learning.mjs [--pool 400] [--rounds 3] [--steps 120] [--seeds 21]
//        [--init previous|scratch] [--val 60] [--test 0] [--work /tmp/bmc-al] [--out <file stem>] [--smoke]
//
// Design (one seed; the committed run is --pool 400 --rounds 3 --steps 120 --init previous
// --val 60 --seeds 21, and a second seed, 22, in active-learning-seed22.json):
// - The pool: `--pool` TXL-PBC training images (of its 1,008) in a seeded order; 10% of it is a
//   batch (40 images at --pool 400). Round 0 labels the first batch of that order; both arms share
//   it, and its trained model, so they start from the same weights.
// - Each later round adds one batch chosen by `bmc label rank` with the previous round's model
//   (arm "rank"), or by `bmc label rank --strategy random` (arm "random", seeded).
// - The "hematologist" is TXL-PBC's ground truth: the chosen images' true boxes go in through
//   `bmc label import` (a COCO file beside the images, as a corrected export would be), which
//   grows each arm's dataset folder and ledger.
// - Training: `bmc train --preset tiny` on the arm's dataset.json for the same number of
//   optimizer steps every round (batch 4, epochs = steps x 4 / labelled: at --steps 120, 40, 80,
//   120, 160 images give 12, 6, 4, 3 epochs), constant learning rate after warmup (no epoch
//   milestones, which would fall at different steps), validation once at the end on `--val`
//   TXL-PBC *validation* images (it sets the counting threshold the ranking uses). `--init
//   previous` (default) fine-tunes each round from the arm's previous model, as a lab's loop does;
//   `--init scratch` trains every round from the same start, so a round's AP depends only on which
//   images are labelled.
// - Test: `bmc export` + `bmc detect` on all 144 images of TXL-PBC's held-out *test* split,
//   AP / AP50 / AP75 from @bmc/metrics against the test labels (class-agnostic, as the model
//   is; detect's results equal `bmc eval`'s, apps/train/test/pixel-scale.test.ts). The test
//   split is never used to choose anything.
// Writes bench/measured/active-learning.json (or --out) and .svg (AP50 / AP75 against labelled images) after
// every round, so a cut-short run still leaves what it measured.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linkImage, mapCategories, readYolo, toCoco, writeCoco } from '@bmc/data';
import { evaluateCoco } from '@bmc/metrics';
import { pickRandom } from '../dist/index.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = join(HERE, '..', 'bin', 'bmc.mjs');
const TXL = process.env.BMC_TXL ?? join(HERE, '..', '..', '..', '..', 'shared', 'data', 'txl-pbc');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const SMOKE = process.argv.includes('--smoke');
const POOL = Number(arg('pool', SMOKE ? 40 : 400));
const ROUNDS = Number(arg('rounds', SMOKE ? 1 : 3));
const STEPS = Number(arg('steps', SMOKE ? 10 : 120));
const BATCH = 4;
const VAL = Number(arg('val', SMOKE ? 8 : 60));
const TEST = Number(arg('test', SMOKE ? 8 : 0)); // 0: the whole test split
const INIT = arg('init', 'previous'); // 'previous': fine-tune from the arm's last round; 'scratch'
if (!['previous', 'scratch'].includes(INIT)) throw new Error(`--init ${INIT}: previous or scratch`);
const SEEDS = String(arg('seeds', '21')).split(',').map(Number);
const WORK = arg('work', '/tmp/bmc-al');
const OUT = arg('out', join(HERE, 'measured', SMOKE ? 'active-learning-smoke' : 'active-learning'));
const STEP = Math.round(POOL / 10);

/** The same seeded order `bmc label rank --strategy random` draws (mulberry32 + Fisher-Yates). */
const shuffle = (list, seed) => pickRandom(list.length, list.length, seed).map((k) => list[k]);

function bmc(args) {
  const t0 = Date.now();
  const out = execFileSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
  const s = (Date.now() - t0) / 1000;
  console.error(`  bmc ${args.slice(0, 2).join(' ')} (${s.toFixed(0)} s)`);
  return { out, seconds: s };
}

/** Records a round's test figures in the arm's labels (`bmc label metric`); the arm goes on from its model. */
function recordRound(arm, round, r) {
  bmc([
    'label',
    'metric',
    arm.labels,
    '--round',
    String(round),
    '--ap50',
    String(r.figures.ap50),
    '--ap75',
    String(r.figures.ap75),
    '--run',
    r.runDir,
  ]);
  arm.model = r.model;
  arm.runDir = r.runDir;
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

/**
 * The chosen images by TXL-PBC source, told apart by image size (about 360 px: the crops centred on
 * one white cell; 416, 575 and 640 x 480 px: the whole-field sources): shows whether a batch
 * spreads over the pool or piles into one source.
 */
function bySource(images) {
  const out = {};
  for (const im of images) {
    const k = im.width < 400 ? '~360 px cell crops' : `${im.width}x${im.height}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/** `lscpu`'s model name and the SIMD flags that matter for the conv kernels. */
function machine() {
  let model = cpus()[0]?.model;
  let flags = [];
  try {
    const l = execFileSync('lscpu', { encoding: 'utf8' });
    model = /^Model name:\s*(.+)$/m.exec(l)?.[1]?.trim() ?? model;
    const all = (/^Flags:\s*(.+)$/m.exec(l)?.[1] ?? '').split(/\s+/);
    flags = all.filter((f) =>
      /^(sse4_1|sse4_2|avx|avx2|fma|f16c|avx512f|avx512bw|avx512_vnni|avx512_bf16|amx_\w+)$/.test(f),
    );
  } catch {}
  return { cpu: model, cores: cpus().length, flags };
}

/** AP / AP50 / AP75 of `bmc detect`'s output folder against the test split (matched by file name). */
function testAp(detOut, gtCoco) {
  const byName = new Map(gtCoco.images.map((im) => [basename(im.file_name), im.id]));
  const images = JSON.parse(readFileSync(join(detOut, 'images.json'), 'utf8'));
  const idOf = new Map(images.images.map((im) => [im.id, byName.get(basename(im.file_name))]));
  const cat = gtCoco.categories[0].id; // class-agnostic: one category on both sides
  const dt = JSON.parse(readFileSync(join(detOut, 'results.json'), 'utf8')).map((r) => ({
    ...r,
    image_id: idOf.get(r.image_id),
    category_id: cat,
  }));
  const s = evaluateCoco(gtCoco, dt).stats;
  const r4 = (x) => Math.round(x * 1e4) / 1e4;
  return { ap: r4(s[0]), ap50: r4(s[1]), ap75: r4(s[2]) };
}

if (process.argv.includes('--plot-only')) {
  // Redraw the committed result without rerunning it.
  writeFileSync(`${OUT}.svg`, plot(JSON.parse(readFileSync(`${OUT}.json`, 'utf8'))));
  process.exit(0);
}

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });
const train = await readYolo(TXL, { split: 'train', policy: 'lenient' });
const val = await readYolo(TXL, { split: 'val', policy: 'lenient' });
let test = await readYolo(TXL, { split: 'test', policy: 'lenient' });
if (TEST) test = { ...test, images: test.images.slice(0, TEST) };
const testCoco = toCoco(mapCategories(test, 'single'), '/');
const testDir = join(WORK, 'test');
mkdirSync(testDir, { recursive: true });
for (const im of test.images) await linkImage(im.file, join(testDir, basename(im.file)));

const startedAt = Date.now();
const record = {
  what: 'AP / AP50 / AP75 on the held-out TXL-PBC test split against labelled training images: batches chosen by bmc label rank vs at random',
  command: `nice -n 10 node apps/train/bench/active-learning.mjs --pool ${POOL} --rounds ${ROUNDS} --steps ${STEPS} --init ${INIT} --val ${VAL} --seeds ${SEEDS.join(',')}${TEST ? ` --test ${TEST}` : ''}`,
  protocol: {
    pool: `${POOL} of ${train.images.length} TXL-PBC training images (seeded order), 10% = ${STEP} images per batch`,
    rounds: `round 0: the first ${STEP} of the order (shared by both arms, one model); rounds 1..${ROUNDS} add ${STEP} each`,
    ranking:
      'bmc label rank -m <previous round model.onnx> <pool> --dataset <labels> --top N (defaults: diversity 0.5, flip disagreement)',
    random: 'bmc label rank --strategy random --seed <seed + round>',
    labels:
      "TXL-PBC's ground truth for the chosen images, through bmc label import (a COCO export beside the images)",
    training: `bmc train --preset tiny, ${STEPS} optimizer steps every round (batch ${BATCH}, epochs = steps / batches per epoch), constant lr after warmup (optim.steps=[]), run.seed = seed, one validation at the end`,
    validation: `${VAL} TXL-PBC validation images (seeded) via data.valPath: the counting threshold and nothing else`,
    test: `bmc export + bmc detect on ${test.images.length} TXL-PBC test images; @bmc/metrics COCO AP, class-agnostic`,
    init:
      INIT === 'previous'
        ? "round 0 from scratch; each later round fine-tunes (bmc train --init) from the same arm's previous round, so round k has had (k+1) x steps in both arms: at this CPU budget a from-scratch tiny model is far from converged after one round's steps, so from-scratch rounds would measure the step budget rather than the labels"
        : 'from scratch every round: a round depends only on which images are labelled, not on the path of earlier rounds',
  },
  pool: POOL,
  batch: STEP,
  steps: STEPS,
  init: INIT,
  valImages: VAL,
  testImages: test.images.length,
  seeds: SEEDS,
  runs: [],
  machine: machine(),
  load: { start: loadavg().map((x) => +x.toFixed(2)) },
};
const save = () => {
  record.minutes = +((Date.now() - startedAt) / 60000).toFixed(1);
  record.load.end = loadavg().map((x) => +x.toFixed(2));
  record.date = new Date().toISOString();
  record.summary = summarise(record.runs);
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(`${OUT}.json.tmp`, `${JSON.stringify(record, null, 1)}\n`);
  renameSync(`${OUT}.json.tmp`, `${OUT}.json`);
  writeFileSync(`${OUT}.svg.tmp`, plot(record));
  renameSync(`${OUT}.svg.tmp`, `${OUT}.svg`);
};

for (const seed of SEEDS) {
  const root = join(WORK, `seed-${seed}`);
  const pool = shuffle(train.images, seed).slice(0, POOL);
  const byName = new Map(pool.map((im) => [basename(im.file), im]));
  const valFile = join(root, 'val.json');
  mkdirSync(join(root, 'pool'), { recursive: true });
  await writeCoco({ ...val, images: shuffle(val.images, seed).slice(0, VAL) }, valFile);
  for (const im of pool) await linkImage(im.file, join(root, 'pool', basename(im.file)));
  const run = { seed, pool: bySource(pool), rank: [], random: [] };
  record.runs.push(run);

  /** Trains on the arm's dataset for STEPS steps, tests the model; returns the round's figures. */
  const trainAndTest = (labels, dir, labelled, init) => {
    const epochs = (STEPS * BATCH) / labelled;
    if (!Number.isInteger(epochs))
      throw new Error(`${STEPS} steps of ${BATCH} do not split into epochs of ${labelled}`);
    const runs = join(dir, 'runs');
    const t = bmc([
      'train',
      '--preset',
      'tiny',
      '--data',
      join(labels, 'dataset.json'),
      '--runs',
      runs,
      '--no-progress',
      ...(init && INIT === 'previous' ? ['--init', init] : []),
      '--epochs',
      String(epochs),
      '--batch-size',
      String(BATCH),
      ...[
        `data.valPath=${valFile}`,
        'data.allowOutsideRoot=true',
        'run.evalEvery=0',
        'optim.steps=[]',
        `run.seed=${seed}`,
      ].flatMap((s) => ['--set', s]),
    ]);
    const runDir = /run folder: (.+)/.exec(t.out)[1].trim();
    const model = join(dir, 'model.onnx');
    bmc(['export', runDir, '--out', model]);
    const det = join(dir, 'test-detections');
    bmc(['detect', '-m', model, testDir, '-o', det, '--no-annotate', '--no-progress']);
    const events = readFileSync(join(runDir, 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"event":"stop"') || l.includes('"event":"eval"'))
      .map((l) => JSON.parse(l));
    const steps = events.findLast((e) => e.event === 'stop')?.step;
    // The run's own validation figures (the val images, not the test split): a second measurement
    // of the same model, so a swing on test can be told from test-set noise.
    const ev = events.findLast((e) => e.event === 'eval');
    const r4 = (x) => Math.round(x * 1e4) / 1e4;
    const val = ev ? { ap50: r4(ev.AP50), ap75: r4(ev.AP75) } : undefined;
    return {
      model,
      runDir,
      figures: { ...testAp(det, testCoco), val, steps, trainSeconds: Math.round(t.seconds) },
    };
  };

  // Round 0: the same first 10% for both arms, trained once.
  const first = pool.slice(0, STEP);
  const arms = {};
  for (const arm of ['rank', 'random']) {
    const labels = join(root, arm, 'labels');
    const gt = await groundTruth(first, train.categories, join(root, arm, 'batch-00'));
    bmc(['label', 'import', gt, '--into', labels, '--round', '0', '--accept-fixes']);
    arms[arm] = { labels, chosen: first };
  }
  console.error(`seed ${seed} round 0: ${STEP} images`);
  const r0 = trainAndTest(arms.rank.labels, join(root, 'round-00'), STEP);
  for (const arm of ['rank', 'random']) {
    const boxes = first.reduce((s, im) => s + im.labels.length, 0);
    run[arm].push({
      round: 0,
      labelled: STEP,
      boxes,
      chosen: bySource(first),
      ...r0.figures,
      load: loadavg()[0],
    });
    recordRound(arms[arm], 0, r0);
  }
  save();
  console.error(`  round 0: AP50 ${r0.figures.ap50} AP75 ${r0.figures.ap75}`);

  for (let round = 1; round <= ROUNDS; round++) {
    for (const arm of ['rank', 'random']) {
      const a = arms[arm];
      const dir = join(root, arm, `round-${String(round).padStart(2, '0')}`);
      const proposed = join(dir, 'proposed');
      const rk = bmc([
        'label',
        'rank',
        '-m',
        a.model,
        join(root, 'pool'),
        '--dataset',
        a.labels,
        '--top',
        String(STEP),
        '--out',
        proposed,
        '--format',
        'coco',
        '--strategy',
        arm,
        '--seed',
        String(seed + round),
      ]);
      const picked = JSON.parse(readFileSync(join(proposed, 'batch.json'), 'utf8')).images;
      const chosen = picked.map((p) => byName.get(p.name));
      const gt = await groundTruth(chosen, train.categories, join(dir, 'corrected'));
      bmc(['label', 'import', gt, '--into', a.labels, '--round', String(round), '--accept-fixes']);
      const labelled = (round + 1) * STEP;
      const r = trainAndTest(a.labels, dir, labelled, a.runDir);
      const prev = run[arm].at(-1);
      const boxes = prev.boxes + chosen.reduce((s, im) => s + im.labels.length, 0);
      run[arm].push({
        round,
        labelled,
        boxes,
        chosen: bySource(chosen),
        ...r.figures,
        rankSeconds: Math.round(rk.seconds),
        load: loadavg()[0],
      });
      recordRound(a, round, r);
      save();
      console.error(
        `  ${arm} round ${round}: AP50 ${r.figures.ap50} AP75 ${r.figures.ap75} (${labelled} images, ${boxes} boxes)`,
      );
    }
  }
  run.status = bmc(['label', 'status', arms.rank.labels, '--json']).out.length > 0 ? 'ok' : 'missing';
}
save();
console.log(JSON.stringify(record.summary, null, 1));

/** Per round: each arm's mean AP50 / AP75 over seeds and the mean rank - random gap. */
function summarise(runs) {
  const done = runs.filter((r) => r.rank.length && r.random.length);
  if (!done.length) return [];
  const rounds = Math.min(...done.flatMap((r) => [r.rank.length, r.random.length]));
  const mean = (xs) => +(xs.reduce((s, x) => s + x, 0) / xs.length).toFixed(4);
  return Array.from({ length: rounds }, (_, k) => {
    const at = (arm, key) => done.map((r) => r[arm][k][key]);
    return {
      round: k,
      labelled: done[0].rank[k].labelled,
      seeds: done.length,
      rank: {
        ap50: mean(at('rank', 'ap50')),
        ap75: mean(at('rank', 'ap75')),
        boxes: mean(at('rank', 'boxes')),
      },
      random: {
        ap50: mean(at('random', 'ap50')),
        ap75: mean(at('random', 'ap75')),
        boxes: mean(at('random', 'boxes')),
      },
      gapAp50: mean(done.map((r) => r.rank[k].ap50 - r.random[k].ap50)),
      gapAp75: mean(done.map((r) => r.rank[k].ap75 - r.random[k].ap75)),
    };
  });
}

function plot(r) {
  const W = 640;
  const H = 320;
  const L = 50;
  const B = 40;
  const pts = r.runs.flatMap((x) => [...x.rank, ...x.random]);
  const xs = pts.map((p) => p.labelled);
  const ys = pts.flatMap((p) => [p.ap50, p.ap75]);
  const xmax = Math.max(...xs, 1);
  const xmin = Math.min(...xs, 0);
  const ymax = Math.min(1, Math.max(0.05, ...ys) * 1.15);
  const X = (x) => L + ((x - xmin) / Math.max(1, xmax - xmin)) * (W - L - 20);
  const Y = (y) => H - B - (y / ymax) * (H - B - 70);
  const summary = summarise(r.runs);
  const line = (key, arm, colour, dash) =>
    `<polyline fill="none" stroke="${colour}" stroke-width="2"${dash ? ' stroke-dasharray="5,4"' : ''} points="${summary
      .map((p) => `${X(p.labelled).toFixed(1)},${Y(p[arm][key]).toFixed(1)}`)
      .join(' ')}"/>` +
    r.runs
      .flatMap((x) => x[arm])
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
  const yt = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
    .filter((y) => y <= ymax)
    .map(
      (y) =>
        `<text x="${L - 6}" y="${(Y(y) + 4).toFixed(1)}" font-size="11" text-anchor="end">${y.toFixed(2)}</text>`,
    )
    .join('');
  const seeds = r.runs.filter((x) => x.rank.length).length;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<line x1="${L}" y1="${H - B}" x2="${W - 10}" y2="${H - B}" stroke="black"/><line x1="${L}" y1="60" x2="${L}" y2="${H - B}" stroke="black"/>
${ticks}${yt}
<text x="${(W + L) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">labelled TXL-PBC training images (pool ${r.pool})</text>
${line('ap50', 'rank', '#c0392b')}${line('ap50', 'random', '#2c7fb8')}
${line('ap75', 'rank', '#c0392b', true)}${line('ap75', 'random', '#2c7fb8', true)}
<text x="${L + 10}" y="16" font-size="12" fill="#c0392b">ranked (bmc label rank)</text>
<text x="${L + 190}" y="16" font-size="12" fill="#2c7fb8">random (bmc label rank --strategy random)</text>
<text x="${L + 10}" y="33" font-size="11">solid AP50, dashed AP75, ${r.testImages} held-out TXL-PBC test images; tiny, ${r.steps} steps/round${r.init === 'previous' ? ', fine-tuned' : ', from scratch'}</text>
<text x="${L + 10}" y="48" font-size="11">${seeds} seed${seeds === 1 ? '' : 's'}${seeds > 1 ? ' (lines: mean, dots: each seed)' : ' (one seed: a weak result)'}</text>
</svg>
`;
}
