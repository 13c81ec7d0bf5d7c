import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClassifier, type DifferentialCount } from '@bmc/classify';
import { writeSmearSlide } from '@bmc/data';
import { exportOnnx } from '@bmc/export';
import { freePort, redisServerPath, startRedis, type TestRedis } from '@bmc/test-utils/redis';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBmc, waitForService } from './bmc-process.js';

// A slide job typed by the service: `bmc serve --queue --classifier` hands the tiles to a real
// `bmc worker` through Redis, assembles its detections and types the cells itself (region reads on
// the service's machine). The reference is single-process `bmc detect --classifier` on the same
// slide with the same classifier and threshold; all processes through bin/bmc.mjs.
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
// Tiles of 320 px overlapping by 96 advance 224 px (as in queue.test.ts); two smear fields on a
// 1,568 px slide: a few tile jobs per field, seconds of work for one worker.
const TILE = ['--tile', '320', '--tile-overlap', '96'];
const STEP = 224;
const SIDE = 7 * STEP;
const ORIGINS: Array<[number, number]> = [
  [STEP, STEP],
  [4 * STEP, 4 * STEP],
];
// A platelet class, so the differential leaves some typed cells out of its total.
const CLASSES = ['blast', 'lymphocyte', 'platelet'];

const HAS_REDIS = redisServerPath() !== undefined;
if (!HAS_REDIS)
  console.log(
    'queue classifier test skipped: redis-server is not installed (apt-get install -y redis-server)',
  );

let redis: TestRedis | undefined;
let dir: string;
const children: ChildProcess[] = [];

const bmcSync = (args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 300_000 });

const bmc = (args: string[]) => startBmc(args, children);

interface CellTypes {
  cells: { type: string; probability: number }[];
}
interface GeoJson {
  features: { properties: { classification: { name: string } } }[];
}
/** Single-process `bmc detect --classifier` of the slide into `dir/<name>`; its cell types. */
function detectLocally(name: string, threshold: number): CellTypes {
  const r = bmcSync([
    'detect',
    join(dir, 'slide.tif'),
    '--classifier',
    join(dir, 'cls.onnx'),
    '--classifier-threshold',
    String(threshold),
    '--no-progress',
    '-o',
    join(dir, name),
    ...TILE,
  ]);
  if (r.status !== 0) throw new Error(`single-process bmc detect failed: ${r.stderr}`);
  return (JSON.parse(readFileSync(join(dir, name, 'cell-types.json'), 'utf8')) as CellTypes[])[0]!;
}

let threshold = 0.5;
let local: CellTypes;

beforeAll(async () => {
  if (!HAS_REDIS) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'bmc-queue-classifier-'));
  await writeSmearSlide(join(dir, 'slide.tif'), { seed: 11, width: SIDE, height: SIDE, fields: ORIGINS });
  // An untrained classifier (seeded weights, 32 px crops, 1/16 of ResNet18's widths), exported with
  // the metadata `bmc classify export` writes. Seed 7: each of its three types is some cell's best
  // class on this slide (seeds 3 and 5 give one type to every cell).
  await tf.setBackend('cpu');
  const model = buildClassifier({
    numClasses: CLASSES.length,
    cropSize: 32,
    widthMultiplier: 0.0625,
    seed: 7,
  });
  writeFileSync(
    join(dir, 'cls.onnx'),
    exportOnnx(model, {
      inputNames: ['crops'],
      outputNames: ['logits'],
      metadata: { bmc_classifier: JSON.stringify({ classNames: CLASSES, cropSize: 32, margin: 0.15 }) },
      graphName: 'bmc-classifier',
    }).bytes,
  );
  model.dispose();
  // The threshold halfway between the two middle probabilities of the slide's cells, so about half
  // the cells are typed and half unclassified, and none sits on the threshold.
  const p = detectLocally('probe', 0)
    .cells.map((c) => c.probability)
    .sort((a, b) => a - b);
  threshold = (p[(p.length >> 1) - 1]! + p[p.length >> 1]!) / 2;
  local = detectLocally('local', threshold);
}, 300_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!HAS_REDIS)('bmc serve --queue --classifier with a bmc worker on Redis', () => {
  it("a slide job's cells are typed on the service as single-process bmc detect --classifier types them", async () => {
    if (!redis) throw new Error('redis-server did not start');
    const cells = local.cells;
    expect(cells.length).toBeGreaterThan(20);
    const types = new Set(cells.map((c) => c.type));
    expect(types.has('unclassified')).toBe(true);
    expect(types.size).toBeGreaterThan(2);

    const port = await freePort();
    const w = bmc(['worker', '--queue', redis.url, '--threads', '1']);
    const serve = bmc([
      'serve',
      '--queue',
      redis.url,
      '--port',
      String(port),
      '--jobs-dir',
      join(dir, 'service'),
      '--slide-root',
      dir,
      '--classifier',
      join(dir, 'cls.onnx'),
      '--classifier-threshold',
      String(threshold),
      ...TILE,
    ]);
    const base = `http://127.0.0.1:${port}`;
    await waitForService(base, serve);
    const res = await fetch(`${base}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'slide.tif' }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    let job: {
      status: string;
      error?: string;
      result?: { count: number; tiles: number; differential?: DifferentialCount };
    };
    const until = Date.now() + 240_000;
    for (;;) {
      job = await (await fetch(`${base}/v1/jobs/${id}`)).json();
      if (job.status !== 'running' || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(job.status, JSON.stringify(job)).toBe('done');
    // The tiles were detected by the worker, not by the service.
    const ranOnWorker = [...w.stderr.matchAll(/^job \S+: \d+ candidate/gm)].length;
    expect(ranOnWorker).toBe(job.result!.tiles);
    expect(ranOnWorker).toBeGreaterThan(4);

    // The GeoJSON carries each cell's type, in the single-process run's order.
    const geoText = await (await fetch(`${base}/v1/jobs/${id}/geojson`)).text();
    const names = (JSON.parse(geoText) as GeoJson).features.map((f) => f.properties.classification.name);
    expect(names).toEqual(cells.map((c) => c.type));
    expect(geoText).toBe(readFileSync(join(dir, 'local', 'slides', 'slide.geojson'), 'utf8'));

    // The differential adds up to the counted cells (platelets left out) and is the single-process one.
    const d = job.result!.differential!;
    expect(d.threshold).toBe(threshold);
    expect(job.result!.count).toBe(cells.length);
    expect(d.total).toBe(cells.length - names.filter((n) => n === 'platelet').length);
    expect(d.rows.reduce((a, r) => a + r.count, 0)).toBe(d.total);
    expect(d.rows.reduce((a, r) => a + r.percent, 0)).toBeCloseTo(100, 6);
    for (const r of d.rows) expect(r.count, r.type).toBe(names.filter((n) => n === r.type).length);
    const [header, row] = readFileSync(join(dir, 'local', 'differential.csv'), 'utf8')
      .trim()
      .split('\n');
    const csvTypes = header!
      .split(',')
      .slice(2)
      .filter((_, k) => k % 2 === 0);
    const csvValues = row!.split(',').slice(1).map(Number);
    expect(d.rows.map((r) => r.type)).toEqual(csvTypes);
    expect([d.total, ...d.rows.map((r) => r.count)]).toEqual([
      csvValues[0],
      ...csvTypes.map((_, k) => csvValues[1 + 2 * k]),
    ]);

    serve.child.kill('SIGTERM');
    w.child.kill('SIGTERM');
    await Promise.all([serve.exit, w.exit]);
  }, 300_000);
});
