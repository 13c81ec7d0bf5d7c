import { type ChildProcess, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, redisServerPath, startRedis, type TestRedis } from '@bmc/test-utils/redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBmc, waitForService } from './bmc-process.js';
import { writeSlideAndFields } from './slide-fixture.js';

// bmc detect --queue / bmc worker on a real Redis (Debian's redis-server on a free port), all
// through bin/bmc.mjs as a lab runs them, against single-process bmc detect on the same inputs.
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
// Tiles of 320 px overlapping by 96 advance 224 px (as in slide.test.ts). 16 fields, 5 steps
// apart, on a 4480 px slide: 9 tiles with tissue per field, 144 tile jobs.
const TILE = ['--tile', '320', '--tile-overlap', '96'];
const STEP = 224;
const SIDE = 20 * STEP;
const ORIGINS = Array.from({ length: 16 }, (_, k): [number, number] => [
  STEP * (2 + 5 * (k % 4)),
  STEP * (2 + 5 * Math.floor(k / 4)),
]);
// Short lock so the killed worker's tile comes back within seconds (the default is 30 s). A tile
// here takes well under a second even on this loaded machine; the lock is renewed every 4 s, so
// a live worker never loses its tile (which would run it twice and fail the once-only check).
const WORKER = ['--threads', '1', '--lock-duration', '8000'];

const HAS_REDIS = redisServerPath() !== undefined;
if (!HAS_REDIS)
  console.log('queue tests skipped: redis-server is not installed (apt-get install -y redis-server)');

let redis: TestRedis | undefined;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  if (!HAS_REDIS) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'bmc-queue-'));
  await writeSlideAndFields(dir, { seed: 11, side: SIDE, origins: ORIGINS, fieldImages: 3 });
  // The reference: single-process bmc detect on the same inputs.
  const local = bmcSync([
    'detect',
    join(dir, 'slide.tif'),
    join(dir, 'fields'),
    '-o',
    join(dir, 'local'),
    ...TILE,
  ]);
  if (local.status !== 0) throw new Error(`single-process bmc detect failed: ${local.stderr}`);
}, 600_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const bmcSync = (args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 600_000 });

/** A bmc process in the background; its stderr collected line by line. */
const bmc = (args: string[]) => startBmc(args, children);

const until = async (cond: () => boolean, timeoutMs: number, what: string) => {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** Job ids a worker finished (ran the network and wrote the result), in order. */
const ran = (log: string) => [...log.matchAll(/^job (\S+): \d+ candidate/gm)].map((m) => m[1]!);
const started = (log: string) => [...log.matchAll(/^job (\S+): started/gm)].map((m) => m[1]!);
const read = (...p: string[]) => readFileSync(join(dir, ...p), 'utf8');
/** `bmc detect --queue` of a slide (in `dir`) and the field images into `out`. */
const queuedDetect = (out: string, slide = 'slide.tif') => [
  'detect',
  '--queue',
  redis!.url,
  join(dir, slide),
  join(dir, 'fields'),
  '-o',
  out,
  ...TILE,
];
/** Detections as JSON with the image id blanked: runs with other image lists number their images apart. */
const withoutImageId = (r: { image_id: number }[]) => r.map((x) => JSON.stringify({ ...x, image_id: 0 }));
/** The single-process run's detections of the slide alone (that run had the field images too). */
function localSlideResults() {
  const images = JSON.parse(read('local', 'images.json')).images as Array<{ id: number; file_name: string }>;
  const slideId = images.find((im) => im.file_name === 'slide.tif')!.id;
  return withoutImageId(
    JSON.parse(read('local', 'results.json')).filter((r: { image_id: number }) => r.image_id === slideId),
  );
}

describe.skipIf(!HAS_REDIS)('bmc detect --queue with bmc worker on Redis', () => {
  it('two workers, one killed mid-tile: the result equals single-process bmc detect, no tile lost or run twice; a rerun reuses every tile', async () => {
    if (!redis) throw new Error('redis-server did not start');

    const a = bmc(['worker', '--queue', redis.url, ...WORKER]);
    const b = bmc(['worker', '--queue', redis.url, ...WORKER]);
    const out = join(dir, 'queued');
    const submit = bmc(queuedDetect(out));
    // Kill worker A with SIGKILL while it holds a tile (its last line says it started one).
    await until(
      () => ran(a.stderr).length >= 5 && /: started\n$/.test(a.stderr),
      240_000,
      'worker A in the middle of a tile',
    );
    a.child.kill('SIGKILL');
    await a.exit;
    expect(await submit.exit, submit.stderr).toBe(0);

    const aRan = ran(a.stderr);
    const inHand = started(a.stderr).filter((id) => !aRan.includes(id));
    expect(inHand).toHaveLength(1);
    const bRan = ran(b.stderr);
    // The tile A died on was taken up by B (stalled-job retry) ...
    expect(bRan).toContain(inHand[0]);
    // ... and every job ran exactly once across the two workers: none lost, none doubled.
    const all = [...aRan, ...bRan];
    expect(new Set(all).size).toBe(all.length);
    const tilesRun = Number(
      /slide\.tif: slide \d+x\d+, level 0 .*?, (\d+) of \d+ tiles run/.exec(submit.stderr)![1],
    );
    // At most 3 x 3 tiles per field touch tissue (the low-resolution mask may miss a thin edge).
    expect(tilesRun).toBeGreaterThan(8 * ORIGINS.length);
    expect(tilesRun).toBeLessThanOrEqual(9 * ORIGINS.length);
    expect(all.length).toBe(tilesRun + 3); // the slide's tiles and the 3 field images
    const store = join(out, 'tiles');
    const slideDirs = readdirSync(store).filter((d) => d !== 'images');
    expect(slideDirs).toHaveLength(1);
    expect(readdirSync(join(store, slideDirs[0]!)).filter((f) => f.endsWith('.json'))).toHaveLength(tilesRun);
    expect(readdirSync(join(store, 'images'))).toHaveLength(3);
    // Progress per slide came from the queue.
    expect(submit.stderr).toMatch(new RegExp(`slide\\.tif: ${tilesRun}/${tilesRun} tiles \\(100%\\)`));

    // Exactly the single-process outputs: COCO results (every box and score), counts, QuPath
    // GeoJSON and the overview image.
    for (const f of ['results.json', 'images.json', 'counts.csv', 'slides/slide.geojson'])
      expect(read('queued', f), f).toBe(read('local', f));
    expect(
      readFileSync(join(out, 'slides/slide.overview.png')).equals(
        readFileSync(join(dir, 'local/slides/slide.overview.png')),
      ),
    ).toBe(true);
    expect(JSON.parse(read('local', 'results.json')).length).toBeGreaterThan(100);

    // A rerun of the same inputs with the same model finds every result in the store: no job runs.
    const before = ran(b.stderr).length;
    const again = bmcSync(queuedDetect(out));
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(new RegExp(`${tilesRun} already done \\(reused from .*\\), 0 queued`));
    expect(ran(b.stderr).length).toBe(before);
    expect(read('queued', 'results.json')).toBe(read('local', 'results.json'));
    b.child.kill('SIGTERM');
    expect(await b.exit).toBe(0);
    expect(b.stderr).toMatch(/worker: stopped \(\d+ job\(s\) run/);
  }, 900_000);

  it('resumes after Redis restarts (empty) in the middle of a slide', async () => {
    if (!redis) throw new Error('redis-server did not start');
    const w = bmc(['worker', '--queue', redis.url, ...WORKER]);
    const out = join(dir, 'restart');
    const submit = bmc(['detect', '--queue', redis.url, join(dir, 'slide.tif'), '-o', out, ...TILE]);
    await until(() => ran(w.stderr).length >= 10, 240_000, 'ten tiles');
    await redis.restart(1_000);
    expect(await submit.exit, submit.stderr).toBe(0);
    expect(submit.stderr).toMatch(/job\(s\) were no longer in Redis \(restarted\?\): queued again/);
    // The same detections as the single-process run of the slide.
    expect(withoutImageId(JSON.parse(read('restart', 'results.json')))).toEqual(localSlideResults());
    expect(read('restart', 'slides/slide.geojson')).toBe(read('local', 'slides/slide.geojson'));
    w.child.kill('SIGTERM');
    await w.exit;
  }, 600_000);

  it('bmc serve --queue --deep-zoom: a slide job posted by path is detected by a worker, with status, results, GeoJSON, overview and Deep Zoom pyramid', async () => {
    if (!redis) throw new Error('redis-server did not start');
    const port = await freePort();
    const w = bmc(['worker', '--queue', redis.url, ...WORKER]);
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
      '--deep-zoom',
      ...TILE,
    ]);
    const base = `http://127.0.0.1:${port}`;
    await waitForService(base, serve);
    const post = (body: unknown) =>
      fetch(`${base}/v1/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const outside = await post({ path: '/etc/hostname' });
    expect(outside.status).toBe(403);
    expect((await outside.json()).error).toMatch(/outside the slide folder/);
    expect((await fetch(`${base}/v1/jobs/${'0'.repeat(32)}`)).status).toBe(404);

    const res = await post({ path: 'slide.tif' });
    expect(res.status).toBe(202);
    const job = (await res.json()) as { id: string; status: string };
    expect(res.headers.get('location')).toBe(`/v1/jobs/${job.id}`);
    let status: { status: string; progress: { done: number; total: number }; result?: { count: number } };
    const seen = new Set<number>();
    for (;;) {
      status = await (await fetch(`${base}/v1/jobs/${job.id}`)).json();
      seen.add(status.progress.done);
      if (status.status !== 'running') break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(status.status, JSON.stringify(status)).toBe('done');
    expect(status.progress.done).toBe(status.progress.total);
    expect(seen.size).toBeGreaterThan(2); // progress was visible while it ran
    const results = await (await fetch(`${base}/v1/jobs/${job.id}/results`)).json();
    expect(withoutImageId(results)).toEqual(localSlideResults());
    expect(await (await fetch(`${base}/v1/jobs/${job.id}/geojson`)).text()).toBe(
      read('local', 'slides/slide.geojson'),
    );
    const png = Buffer.from(await (await fetch(`${base}/v1/jobs/${job.id}/overview.png`)).arrayBuffer());
    expect(png.equals(readFileSync(join(dir, 'local/slides/slide.overview.png')))).toBe(true);
    // The slide's Deep Zoom pyramid for the deep-zoom viewer: 4480 px lies in (2^12, 2^13], so the
    // top level is 13; field 0's smear (x and y 504-711) is under tile 2_2 (507-763).
    const done = await (await fetch(`${base}/v1/jobs/${job.id}`)).json();
    expect(done.links.dzi).toBe(`/v1/jobs/${job.id}/slide.dzi`);
    expect(await (await fetch(`${base}${done.links.dzi}`)).text()).toMatch(
      new RegExp(`TileSize="254"\\s*>\\s*<Size\\s+Height="${SIDE}"\\s+Width="${SIDE}"`),
    );
    const tile = await fetch(`${base}/v1/jobs/${job.id}/slide_files/13/2_2.jpeg`);
    expect([tile.status, tile.headers.get('content-type')]).toEqual([200, 'image/jpeg']);
    // Uploading the same slide is the same job too (the id is the slide's identity), already done.
    const form = new FormData();
    form.append('file', new Blob([readFileSync(join(dir, 'slide.tif'))]), 'slide.tif');
    const uploaded = await fetch(`${base}/v1/jobs`, { method: 'POST', body: form });
    expect(uploaded.status).toBe(202);
    expect(await uploaded.json()).toMatchObject({ id: job.id, status: 'done' });
    const page = await fetch(`${base}/jobs`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain("fetch('/v1/jobs'");
    // Posting the same slide again is the same job, already done.
    const again = await (await post({ path: join(dir, 'slide.tif') })).json();
    expect(again).toMatchObject({ id: job.id, status: 'done' });
    serve.child.kill('SIGTERM');
    w.child.kill('SIGTERM');
    await Promise.all([serve.exit, w.exit]);
  }, 600_000);

  it("a slide that vanishes from the share before its tiles run fails with the worker's reason; the run goes on", async () => {
    if (!redis) throw new Error('redis-server did not start');
    copyFileSync(join(dir, 'slide.tif'), join(dir, 'gone.tif'));
    const out = join(dir, 'gone');
    const submit = bmc(queuedDetect(out, 'gone.tif'));
    await until(
      () => /gone\.tif: slide \d+x\d+, \d+ of \d+ tiles with tissue, \d+ queued/.test(submit.stderr),
      120_000,
      'queued',
    );
    rmSync(join(dir, 'gone.tif'));
    const w = bmc(['worker', '--queue', redis.url, ...WORKER]);
    // Exit 0: the three images were detected; the slide is listed in failed.csv with the reason.
    expect(await submit.exit, submit.stderr).toBe(0);
    expect(submit.stderr).toMatch(
      /skipped \S*gone\.tif: tile \d+ failed on a worker after 1 attempt\(s\): \S*gone\.tif: cannot read slide/,
    );
    expect(read('gone', 'failed.csv')).toMatch(
      /^file,error\ngone\.tif,tile \d+ failed on a worker after 1 attempt\(s\): .*cannot read slide/,
    );
    expect(read('gone', 'counts.csv').trim().split('\n')).toHaveLength(4); // header + 3 images
    w.child.kill('SIGTERM');
    await w.exit;
  }, 300_000);

  it('a bad or unreachable queue URL is exit 2 with one line naming it', async () => {
    if (!redis) throw new Error('redis-server did not start');
    const port = await freePort();
    const r = bmcSync([
      'detect',
      '--queue',
      `redis://127.0.0.1:${port}`,
      join(dir, 'slide.tif'),
      '-o',
      join(dir, 'x'),
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^bmc: --queue redis://127\\.0\\.0\\.1:${port}: cannot reach Redis \\(.*ECONNREFUSED.*\\)\\n$`,
      ),
    );
    const w = bmcSync(['worker', '--queue', 'localhost:6379']);
    expect(w.status).toBe(2);
    expect(w.stderr).toBe(
      'bmc: --queue localhost:6379: expected a redis:// or rediss:// URL, got localhost:\n',
    );
  });
});
