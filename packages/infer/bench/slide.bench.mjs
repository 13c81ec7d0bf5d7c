// Slide throughput: one synthetic pyramidal slide detected by single-process `bmc-infer detect`
// (the reference) and by `bmc-infer detect --queue` with 1 and with 2 `bmc-infer worker`s on a
// Redis started here (Debian's redis-server on a free port). Reports tiles/s (tiles with tissue,
// the ones the network runs) and cells/s (cells at the model's counting threshold) per mode and as
// ratios to the single process measured in the same run, modes rotated per round so drifting load
// on a shared machine falls on each alike. Every mode's results.json must be byte-identical to
// the single process's (checked; the run fails otherwise).
//
// Workers are started before the clock (they are long-running services) and each run gets a fresh
// tile store (no reuse). On a 2-core machine "2 workers" is 2 x 1 onnxruntime thread and "1
// worker" 1 x 2 threads, as is the single process: the same cores, split differently; on several
// machines each worker brings its own cores.
//
// Run after `pnpm build`: node bench/slide.bench.mjs [--side 6720] [--fields 25] [--rounds 3]
// [--model file.onnx] [--out bench/measured/slide.json]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, machineRecord, report } from '@bmc/bench-utils';
import { writeSmearSlide } from '@bmc/data';
import { startRedis } from '@bmc/test-utils/redis';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const STEP = 224; // tiles of 320 px overlapping by 96 (as the slide tests)
const TILE = ['--tile', '320', '--tile-overlap', '96'];
const FIELDS = Number(arg('fields', '25'));
const GRID = Math.ceil(Math.sqrt(FIELDS));
const SIDE = Number(arg('side', String((GRID * 5 + 5) * STEP)));
const ROUNDS = Number(arg('rounds', '3'));
const SHIPPED = join(here, '..', '..', 'models', 'models', 'blood-smear', 'model.onnx');
const MODEL = arg(
  'model',
  existsSync(SHIPPED) ? SHIPPED : join(here, '..', 'test', 'fixtures', 'tiny-detector.onnx'),
);
const OUT = arg('out', join(here, 'measured', 'slide.json'));
const BIN = join(here, '..', 'bin', 'bmc-infer.mjs');
const CORES = Math.min(2, availableParallelism());

const machine = machineRecord();

const redis = await startRedis();
if (!redis) {
  console.log('slide bench skipped: redis-server is not installed (apt-get install -y redis-server)');
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'bmc-slide-bench-'));
const children = new Set();
const cleanup = async () => {
  for (const c of children) c.kill('SIGKILL');
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

function run(args, { wait = true, ready } = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  const exited = new Promise((ok) =>
    child.once('exit', (code) => {
      children.delete(child);
      ok(code);
    }),
  );
  let onData = () => {};
  child.stderr.on('data', (b) => {
    stderr += b;
    onData();
  });
  const readyP = ready
    ? new Promise((ok, fail) => {
        onData = () => {
          if (ready.test(stderr)) ok();
        };
        exited.then((code) => fail(new Error(`${args[0]} exited ${code}: ${stderr}`)));
      })
    : undefined;
  return { child, exited, ready: readyP, stderr: () => stderr, wait };
}

try {
  const origins = Array.from({ length: FIELDS }, (_, k) => [
    STEP * (2 + 5 * (k % GRID)),
    STEP * (2 + 5 * Math.floor(k / GRID)),
  ]);
  const slide = join(dir, 'slide.tif');
  await writeSmearSlide(slide, { seed: 5, width: SIDE, height: SIDE, fields: origins });

  const modes = [
    { name: 'single process', workers: 0, threads: CORES },
    { name: '1 worker', workers: 1, threads: CORES },
    { name: `${CORES} workers`, workers: CORES, threads: 1 },
  ];
  const results = Object.fromEntries(modes.map((m) => [m.name, []]));
  let reference;
  let n = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const order = modes.map((_, i) => modes[(i + round) % modes.length]);
    for (const mode of order) {
      const out = join(dir, `out-${n++}`);
      const workers = [];
      for (let w = 0; w < mode.workers; w++)
        workers.push(
          run(['worker', '--queue', redis.url, '-m', MODEL, '--threads', String(mode.threads)], {
            ready: /^worker on /m,
          }),
        );
      await Promise.all(workers.map((w) => w.ready));
      const args = ['detect', slide, '-m', MODEL, '-o', out, '--no-annotate', '--no-progress', ...TILE];
      if (mode.workers) args.push('--queue', redis.url);
      else args.push('--threads', String(mode.threads));
      const t0 = performance.now();
      const d = run(args);
      const code = await d.exited;
      const ms = performance.now() - t0;
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
      if (code !== 0) throw new Error(`${mode.name}: bmc-infer detect exited ${code}: ${d.stderr()}`);
      const tiles = Number(/(\d+) of \d+ tiles run/.exec(d.stderr())[1]);
      const cells = Number(readFileSync(join(out, 'counts.csv'), 'utf8').trim().split('\n')[1].split(',')[3]);
      const res = readFileSync(join(out, 'results.json'), 'utf8');
      reference ??= res;
      if (res !== reference) throw new Error(`${mode.name}: results.json differs from the first run's`);
      results[mode.name].push({ ms, tiles, cells });
      console.log(`${mode.name}: ${tiles} tiles, ${cells} cells in ${(ms / 1000).toFixed(1)} s`);
    }
  }

  const median = (a) => {
    const s = [...a].sort((x, y) => x - y);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const single = median(results['single process'].map((r) => r.ms));
  const rows = modes.map((m) => {
    const r = results[m.name];
    const ms = median(r.map((x) => x.ms));
    const { tiles, cells } = r[0];
    return {
      name: `${m.name} (${m.workers ? `${m.workers} x ${m.threads} thread(s), bmc detect --queue` : `${m.threads} threads`})`,
      ms,
      refMs: single,
      ref: 'single-process bmc detect',
      extra: `${((tiles * 1000) / ms).toFixed(2)} tiles/s, ${((cells * 1000) / ms).toFixed(1)} cells/s, throughput ratio ${(single / ms).toFixed(2)}x`,
      tiles,
      cells,
      tilesPerSecond: +((tiles * 1000) / ms).toFixed(3),
      cellsPerSecond: +((cells * 1000) / ms).toFixed(2),
      throughputVsSingle: +(single / ms).toFixed(3),
      runsMs: r.map((x) => Math.round(x.ms)),
    };
  });
  const notes = [
    `slide ${SIDE} x ${SIDE} (pyramidal BigTIFF, deflate tiles), ${FIELDS} smear fields; tiles 320 px, overlap 96; glass skipped by the tissue mask`,
    `model ${relative(join(here, '..', '..', '..'), MODEL)}; wall time of bmc-infer detect (model load, plan, tiles, assembly, outputs), workers started before the clock`,
    `${ROUNDS} round(s), modes rotated per round; median of the rounds`,
    'results.json of every mode byte-identical to the single process',
  ];
  report('infer-slide', rows, notes);
  const file = {
    suite: 'infer-slide',
    date: new Date().toISOString(),
    machine: { ...machine, loadavgAtEnd: loadAverage() },
    slide: { side: SIDE, fields: FIELDS, tile: 320, overlap: 96 },
    rows,
    notes,
  };
  await mkdir(dirname(OUT), { recursive: true });
  await writeFile(`${OUT}.tmp`, `${JSON.stringify(file, null, 2)}\n`);
  await rename(`${OUT}.tmp`, OUT);
  console.log(`wrote ${relative(process.cwd(), OUT)}`);
} finally {
  await cleanup();
}
