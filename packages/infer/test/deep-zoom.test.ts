import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSmearSlide } from '@bmc/data';
import { redisServerPath, startRedis, type TestRedis } from '@bmc/test-utils/redis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCommand } from '../src/detect-command.js';
import { createServer, type InferServer } from '../src/server.js';
import { DZI_FILE, DZI_TILES, writeDeepZoom } from '../src/slide/deep-zoom.js';
import { PACKAGE_ROOT, TINY_MODEL, writeFinishedSlideJob } from './helpers.js';

// A 3000 x 2000 pyramidal slide with two smear fields (320 px, a 56 px glass margin around a
// 208 px smear) on glass of (242, 240, 241), writeSmearSlide's colour.
const W = 3000;
const H = 2000;
const FIELDS: Array<[number, number]> = [
  [224, 448],
  [1344, 896],
];

// Deep Zoom levels by hand: the longer side 3000 lies in (2^11, 2^12], so levels 0 to 12; each
// level halves the one above, rounding up, down to 1 x 1.
const LEVELS: Array<[number, number]> = [
  [1, 1],
  [2, 1],
  [3, 2],
  [6, 4],
  [12, 8],
  [24, 16],
  [47, 32],
  [94, 63],
  [188, 125],
  [375, 250],
  [750, 500],
  [1500, 1000],
  [3000, 2000],
];
// Tiles of 254 px plus a 1 px overlap on each inner side: tile c spans x from 254c - 1 (0 for the
// first) to 254(c + 1) + 1 (the level's edge for the last).
const span = (c: number, side: number): [number, number] => [
  Math.max(0, 254 * c - 1),
  Math.min(side, 254 * (c + 1) + 1),
];

let dir: string;
let slide: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bmc-deep-zoom-'));
  slide = join(dir, 'slide.tif');
  await writeSmearSlide(slide, { seed: 3, width: W, height: H, fields: FIELDS });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** `level -> ["c_r", ...]` of the tiles written. */
const written = (dz: string) =>
  new Map(
    readdirSync(join(dz, DZI_TILES)).map((l) => [
      Number(l),
      readdirSync(join(dz, DZI_TILES, l))
        .map((f) => f.replace(/\.jpeg$/, ''))
        .sort(),
    ]),
  );

describe('Deep Zoom pyramid of a slide', () => {
  it('has the levels and tile sizes computed by hand from the slide and tile sizes', async () => {
    const dz = join(dir, 'all.dz');
    const info = await writeDeepZoom(slide, dz);
    expect(info).toMatchObject({ width: W, height: H, tileSize: 254, overlap: 1, reused: false });
    expect(readFileSync(join(dz, DZI_FILE), 'utf8')).toMatch(
      /<Image xmlns="http:\/\/schemas\.microsoft\.com\/deepzoom\/2008"\s+Format="jpeg"\s+Overlap="1"\s+TileSize="254"\s*>\s*<Size\s+Height="2000"\s+Width="3000"\s*\/>/,
    );
    const tiles = written(dz);
    expect([...tiles.keys()].sort((a, b) => a - b)).toEqual(LEVELS.map((_, l) => l));
    // The top level: 12 columns (11 x 254 = 2794 < 3000) and 8 rows (7 x 254 = 1778 < 2000).
    expect(tiles.get(12)).toHaveLength(12 * 8);
    for (const [level, [lw, lh]] of LEVELS.entries()) {
      const cols = Math.ceil(lw / 254);
      const rows = Math.ceil(lh / 254);
      expect(tiles.get(level), `level ${level}`).toHaveLength(cols * rows);
      for (let c = 0; c < cols; c++)
        for (let r = 0; r < rows; r++) {
          const m = await sharp(join(dz, DZI_TILES, String(level), `${c}_${r}.jpeg`)).metadata();
          const [x0, x1] = span(c, lw);
          const [y0, y1] = span(r, lh);
          expect([m.width, m.height, m.channels], `level ${level} tile ${c}_${r}`).toEqual([
            x1 - x0,
            y1 - y0,
            3,
          ]);
        }
    }
    // The corners of the top level, spelled out: 255 (first), 256 (inner), 207 and 223 (last).
    const size = async (t: string) => {
      const m = await sharp(join(dz, DZI_TILES, '12', `${t}.jpeg`)).metadata();
      return [m.width, m.height];
    };
    expect(await size('0_0')).toEqual([255, 255]);
    expect(await size('1_1')).toEqual([256, 256]);
    expect(await size('11_7')).toEqual([207, 223]);
    // Tile pixels are the slide's: the inner tile 5_4 starts at (1269, 1015).
    const tile = await sharp(join(dz, DZI_TILES, '12', '5_4.jpeg'))
      .raw()
      .toBuffer();
    const region = await sharp(slide)
      .extract({ left: 1269, top: 1015, width: 256, height: 256 })
      .removeAlpha()
      .raw()
      .toBuffer();
    let diff = 0;
    for (let i = 0; i < tile.length; i++) diff += Math.abs(tile[i]! - region[i]!);
    expect(diff / tile.length).toBeLessThan(3); // JPEG quality 80
  });

  it('leaves out bare glass tiles: the top level holds exactly the tiles under the two smears', async () => {
    const dz = join(dir, 'glass.dz');
    const info = await writeDeepZoom(slide, dz, { glass: [242, 240, 241] });
    expect(info.glass).toBe('#f2f0f1');
    // Smear A covers x 280-487, y 504-711: column 1 (253-509), rows 1 (253-509) and 2 (507-763).
    // Smear B covers x 1400-1607, y 952-1159: columns 5 (1269-1525) and 6 (1523-1779), rows 3
    // (761-1017) and 4 (1015-1271).
    expect(written(dz).get(12)).toEqual(['1_1', '1_2', '5_3', '5_4', '6_3', '6_4']);
    for (const [level, names] of written(dz))
      for (const n of names) {
        const [c, r] = n.split('_').map(Number) as [number, number];
        const [lw, lh] = LEVELS[level]!;
        expect(c < Math.ceil(lw / 254) && r < Math.ceil(lh / 254), `level ${level} tile ${n}`).toBe(true);
      }
  });

  it('is kept on a rerun for the same slide, rewritten whole for a changed one, and never half-written', async () => {
    const src = join(dir, 'rerun.tif');
    await copyFile(slide, src);
    const dz = join(dir, 'rerun.dz');
    await writeDeepZoom(src, dz);
    const dzi = join(dz, DZI_FILE);
    const before = statSync(dzi);
    expect((await writeDeepZoom(src, dz)).reused).toBe(true);
    expect(statSync(dzi).ino).toBe(before.ino);
    // Another slide into the same folder: a new pyramid of its size. (A new file name: libvips
    // caches an opened file by its name within a process.)
    const other = join(dir, 'other.tif');
    await writeSmearSlide(other, { seed: 4, width: 1000, height: 700, fields: [[100, 100]] });
    expect((await writeDeepZoom(other, dz)).reused).toBe(false);
    expect(readFileSync(dzi, 'utf8')).toMatch(/Height="700"\s+Width="1000"/);
    expect(Math.max(...written(dz).keys())).toBe(10); // 1000 in (2^9, 2^10]
    // A slide that fails half-way (truncated): the pyramid before it stays, no temporary folder.
    const good = readFileSync(dzi, 'utf8');
    const broken = join(dir, 'broken.tif');
    await copyFile(slide, broken);
    await truncate(broken, Math.floor(statSync(broken).size / 2));
    await expect(writeDeepZoom(broken, dz)).rejects.toThrow();
    expect(readFileSync(dzi, 'utf8')).toBe(good);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('bmc detect --deep-zoom writes slides/<name>.dz beside the GeoJSON, glass colour from the slide', async () => {
    const out = join(dir, 'out');
    const res = await detectCommand({
      inputs: [slide],
      model: TINY_MODEL,
      out,
      deepZoom: true,
      annotate: false,
      progress: false,
      threads: 1,
      log: () => {},
    });
    const s = res.processed[0]!.slide!;
    expect(s.deepZoom).toEqual({ dzi: join(out, 'slides', 'slide.dz', DZI_FILE), glass: '#f2f0f1' });
    expect(written(join(out, 'slides', 'slide.dz')).get(12)).toEqual([
      '1_1',
      '1_2',
      '5_3',
      '5_4',
      '6_3',
      '6_4',
    ]);
    // The same through the binary; run again into the same folder, the pyramid is kept as it is.
    const cli = () =>
      spawnSync(
        process.execPath,
        [
          join(PACKAGE_ROOT, 'bin', 'bmc-infer.mjs'),
          'detect',
          slide,
          '-m',
          TINY_MODEL,
          '--deep-zoom',
          '--no-annotate',
          '--threads',
          '1',
          '--no-progress',
          '-o',
          join(dir, 'cli'),
        ],
        { encoding: 'utf8', timeout: 300_000 },
      );
    const first = cli();
    expect(first.status, first.stderr).toBe(0);
    const cliDz = join(dir, 'cli', 'slides', 'slide.dz');
    expect(readFileSync(join(cliDz, DZI_FILE), 'utf8')).toBe(
      readFileSync(join(out, 'slides', 'slide.dz', DZI_FILE), 'utf8'),
    );
    expect(written(cliDz)).toEqual(written(join(out, 'slides', 'slide.dz')));
    const ino = statSync(join(cliDz, DZI_FILE)).ino;
    expect(cli().status).toBe(0);
    expect(statSync(join(cliDz, DZI_FILE)).ino).toBe(ino);
    // Without the option: no pyramid.
    const plain = await detectCommand({
      inputs: [slide],
      model: TINY_MODEL,
      out: join(dir, 'plain'),
      annotate: false,
      progress: false,
      threads: 1,
      log: () => {},
    });
    expect(plain.processed[0]!.slide!.deepZoom).toBeUndefined();
    expect(readdirSync(join(dir, 'plain', 'slides')).sort()).toEqual(['slide.geojson', 'slide.overview.png']);
  });
});

const HAS_REDIS = redisServerPath() !== undefined;
if (!HAS_REDIS)
  console.warn(
    'deep-zoom job route tests skipped: redis-server is not installed (apt-get install -y redis-server)',
  );

describe.skipIf(!HAS_REDIS)('bmc serve --queue --deep-zoom: the job routes serve the pyramid', () => {
  let redis: TestRedis | undefined;
  let server: InferServer;
  let base: string;
  const id = '0123456789abcdef'.repeat(2);
  let dz: string;

  beforeAll(async () => {
    redis = await startRedis();
    if (!redis) throw new Error('redis-server did not start');
    const jobs = join(dir, 'service');
    // A finished slide job as the service leaves it: the outputs of `bmc detect --deep-zoom` in
    // jobs/<id>/ and the job's record (no worker needed to serve what is done).
    dz = join((await writeFinishedSlideJob(jobs, id, slide, TINY_MODEL)).dir, 'slides', 'slide.dz');
    server = await createServer({
      model: TINY_MODEL,
      port: 0,
      logger: false,
      viewer: false,
      threads: 1,
      jobs: { url: redis.url, dir: jobs, slideRoot: dir, maxUploadBytes: 1 << 20, deepZoom: true },
    });
    base = await server.listen();
  });
  afterAll(async () => {
    await server?.close();
    await redis?.stop();
  });

  it('returns the descriptor and tiles of a job, 404 for a glass tile, and nothing outside the pyramid', async () => {
    const job = await (await fetch(`${base}/v1/jobs/${id}`)).json();
    expect(job.links.dzi).toBe(`/v1/jobs/${id}/slide.dzi`);
    expect(job.links.viewer).toBeUndefined(); // this service serves no viewer (viewer: false)
    const dzi = await fetch(`${base}/v1/jobs/${id}/slide.dzi`);
    expect(dzi.status).toBe(200);
    expect(dzi.headers.get('content-type')).toMatch(/^application\/xml/);
    expect(await dzi.text()).toBe(readFileSync(join(dz, DZI_FILE), 'utf8'));
    const tile = await fetch(`${base}/v1/jobs/${id}/slide_files/12/5_4.jpeg`);
    expect(tile.status).toBe(200);
    expect(tile.headers.get('content-type')).toBe('image/jpeg');
    expect(
      Buffer.from(await tile.arrayBuffer()).equals(readFileSync(join(dz, DZI_TILES, '12', '5_4.jpeg'))),
    ).toBe(true);
    // A lower level, whole: the slide in one tile.
    expect((await fetch(`${base}/v1/jobs/${id}/slide_files/8/0_0.jpeg`)).status).toBe(200);
    // Bare glass was never written; a tile past the grid does not exist either.
    expect((await fetch(`${base}/v1/jobs/${id}/slide_files/12/0_0.jpeg`)).status).toBe(404);
    expect((await fetch(`${base}/v1/jobs/${id}/slide_files/12/99_99.jpeg`)).status).toBe(404);
    // Traversal, encoded or not, and anything that is not <level>/<column>_<row>.jpeg: refused,
    // never a file's bytes.
    const secret = readFileSync(join(dir, 'service', 'jobs', id, 'job.json'), 'utf8');
    for (const path of [
      `/v1/jobs/${id}/slide_files/..%2F..%2F..%2Fjob.json`,
      `/v1/jobs/${id}/slide_files/12/..%2F..%2F..%2F..%2Fjob.json`,
      `/v1/jobs/${id}/slide_files/%2E%2E/job.json`,
      `/v1/jobs/${id}/slide_files/12/5_4.jpeg%00.json`,
      `/v1/jobs/${id}/slide_files/12/vips-properties.xml`,
      `/v1/jobs/${id}/slide_files/12/5_4.png`,
      `/v1/jobs/${id}/slide_files/-1/0_0.jpeg`,
      `/v1/jobs/..%2F..%2Fjobs%2F${id}/slide.dzi`,
      `/v1/jobs/${id}/..%2Fjob.json`,
      `/v1/jobs/${id}/slide_files/12/../../job.json`,
    ]) {
      const res = await fetch(`${base}${path}`);
      const body = await res.text();
      expect([400, 404], `${path}: ${res.status}`).toContain(res.status);
      expect(body).not.toContain(secret.slice(0, 40));
    }
  });

  it('a job without a pyramid (done before --deep-zoom) answers 404 with the reason', async () => {
    const other = 'fedcba9876543210'.repeat(2);
    const out = join(dir, 'service', 'jobs', other);
    await mkdir(out, { recursive: true });
    await writeFile(
      join(out, 'job.json'),
      JSON.stringify({
        id: other,
        file: slide,
        status: 'done',
        submittedAt: '',
        progress: { done: 1, total: 1 },
        result: { width: W, height: H, count: 0, counts: {}, tiles: 1 },
      }),
    );
    const job = await (await fetch(`${base}/v1/jobs/${other}`)).json();
    expect(job.links.dzi).toBeUndefined();
    const res = await fetch(`${base}/v1/jobs/${other}/slide.dzi`);
    expect(res.status).toBe(404);
    expect((await res.json()).error).toBe(`job ${other} has no slide.dzi`);
  });
});
