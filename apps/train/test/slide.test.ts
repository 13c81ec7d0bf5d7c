import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSlideAndFields } from './slide-fixture.js';

// A synthetic pyramidal slide through `bmc detect` (the shipped model, as a user runs it), against
// the same fields run as separate images. Side 40,000 (the slide): writing it (glass plus
// fields composed by libvips into a tiled pyramidal BigTIFF) took 50 s wall / 38 s CPU alone at
// load ~9 and ~80 s inside this file at load ~11 on the shared 2-core machine, detecting it 6-13 s;
// the whole file 2.0 min. BMC_SLIDE_TEST_SIDE=12000 runs a smaller one.
const SIDE = Number(process.env.BMC_SLIDE_TEST_SIDE ?? 40_000);
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
// Tiles of 320 px overlapping by 96 advance 224 px. A field of 320 px (smear inside a 56 px glass
// margin) placed at a multiple of 224 is exactly one tile: that tile's network input is the
// field's own image, and the neighbours overlapping it see its glass margin plus less than half a
// cell, whose centres lie outside their cores. So the slide's cells must equal the fields' cells.
const TILE = ['--tile', '320', '--tile-overlap', '96'];
const STEP = 224;
const CELLS = (n: number) => n * STEP;
const ORIGINS: Array<[number, number]> = [
  [CELLS(2), CELLS(3)],
  [CELLS(10), CELLS(5)],
  [CELLS(5), CELLS(12)],
  [CELLS(Math.floor(SIDE / STEP) - 3), CELLS(Math.floor(SIDE / STEP) - 4)],
];
/** Peak RSS of the child, printed by a preloaded hook when it exits (KiB). */
const RSS_HOOK =
  "data:text/javascript,process.on('exit',()=>process.stderr.write('maxrss_kib='+process.resourceUsage().maxRSS+'\\n'))";
/** Peak RSS allowed for a slide of any size: the model, one 320 px tile, a <= 4096 px thumbnail, the detections. */
const RSS_BOUND_MIB = 700;

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bmc-slide-'));
  await writeSlideAndFields(dir, { seed: 7, side: SIDE, origins: ORIGINS });
}, 600_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bmc = (args: string[]) =>
  spawnSync(process.execPath, ['--import', RSS_HOOK, BIN, 'detect', ...args, ...TILE, '--no-progress'], {
    encoding: 'utf8',
    timeout: 600_000,
  });

interface Coco {
  image_id: number;
  category_id: number;
  bbox: number[];
  score: number;
}

describe(`bmc detect on a ${SIDE} x ${SIDE} pyramidal slide`, () => {
  it('reads it region by region with bounded memory and finds exactly the cells of its fields run as images', () => {
    const s = bmc([join(dir, 'slide.tif'), '-o', join(dir, 'out-slide')]);
    expect(s.status, s.stderr).toBe(0);
    const f = bmc([join(dir, 'fields'), '-o', join(dir, 'out-fields')]);
    expect(f.status, f.stderr).toBe(0);

    const rss = Number(/maxrss_kib=(\d+)/.exec(s.stderr)![1]) / 1024;
    console.log(
      `slide ${SIDE}x${SIDE}: peak RSS ${rss.toFixed(0)} MiB; ${/\d+ of \d+ tiles run[^,]*/.exec(s.stderr)![0]}`,
    );
    expect(rss).toBeLessThan(RSS_BOUND_MIB);
    // Glass is skipped: only tiles touching a field run (at most 3 x 3 per field).
    const [, run, planned] = /(\d+) of (\d+) tiles run/.exec(s.stderr)!.map(Number) as number[];
    expect(run).toBeLessThanOrEqual(9 * ORIGINS.length);
    expect(planned).toBe((Math.ceil((SIDE - 320) / STEP) + 1) ** 2);

    // Cells at the counting threshold (what counts.csv, the GeoJSON and the overview hold).
    const t = Number(/counting cells at score >= ([\d.]+)/.exec(s.stderr)![1]);
    const slide = (JSON.parse(readFileSync(join(dir, 'out-slide', 'results.json'), 'utf8')) as Coco[]).filter(
      (r) => r.score >= t,
    );
    const images = JSON.parse(readFileSync(join(dir, 'out-fields', 'images.json'), 'utf8')).images as Array<{
      id: number;
      file_name: string;
    }>;
    const fields = (JSON.parse(readFileSync(join(dir, 'out-fields', 'results.json'), 'utf8')) as Coco[])
      .filter((r) => r.score >= t)
      .map((r) => {
        const k = Number(/field(\d+)/.exec(images.find((i) => i.id === r.image_id)!.file_name)![1]);
        const [x, y] = ORIGINS[k]!;
        return { ...r, bbox: [r.bbox[0]! + x, r.bbox[1]! + y, r.bbox[2]!, r.bbox[3]!] };
      });
    expect(fields.length).toBeGreaterThan(20);
    const order = (a: Coco, b: Coco) =>
      b.score - a.score || a.bbox[0]! - b.bbox[0]! || a.bbox[1]! - b.bbox[1]!;
    slide.sort(order);
    fields.sort(order);
    expect(slide.length).toBe(fields.length);
    slide.forEach((r, i) => {
      const e = fields[i]!;
      expect(r.category_id).toBe(e.category_id);
      expect(r.score).toBe(e.score);
      // Offsets of tens of thousands of pixels in float32 round the second decimal.
      for (let k = 0; k < 4; k++) expect(Math.abs(r.bbox[k]! - e.bbox[k]!)).toBeLessThan(0.05);
    });
    const counts = readFileSync(join(dir, 'out-slide', 'counts.csv'), 'utf8')
      .trim()
      .split('\n');
    expect(counts[1]).toBe(`slide.tif,${SIDE},${SIDE},${fields.length}`);

    // QuPath GeoJSON: one detection Feature per counted cell, its box as a closed polygon.
    const gj = JSON.parse(readFileSync(join(dir, 'out-slide', 'slides', 'slide.geojson'), 'utf8'));
    expect(gj.type).toBe('FeatureCollection');
    expect(gj.features).toHaveLength(fields.length);
    for (const feat of gj.features) {
      expect(feat.type).toBe('Feature');
      expect(feat.geometry.type).toBe('Polygon');
      const ring = feat.geometry.coordinates[0];
      expect(ring).toHaveLength(5);
      expect(ring[4]).toEqual(ring[0]);
      expect(feat.properties.objectType).toBe('detection');
      expect(feat.properties.classification.name).toBe('cell');
      expect(feat.properties.classification.color).toHaveLength(3);
      expect(feat.properties.measurements.score).toBeGreaterThanOrEqual(t);
    }
  }, 1_200_000);

  it('reads a PNG above 64 megapixels the same way (streamed into a temporary tiled TIFF)', async () => {
    const png = join(dir, 'big.png');
    await sharp({
      create: { width: 9000, height: 8000, channels: 3, background: { r: 242, g: 240, b: 241 } },
    })
      .composite([
        { input: join(dir, 'fields', 'field0.png'), left: CELLS(2), top: CELLS(3) },
        { input: join(dir, 'fields', 'field1.png'), left: CELLS(30), top: CELLS(30) },
      ])
      .png({ compressionLevel: 1 })
      .toFile(png);
    const r = bmc([png, '-o', join(dir, 'out-big')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/big\.png: slide 9000x8000, level 0/);
    const byField = readFileSync(join(dir, 'out-fields', 'counts.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    const n = (name: string) => Number(byField.find((l) => l.startsWith(name))!.split(',')[3]);
    const counts = readFileSync(join(dir, 'out-big', 'counts.csv'), 'utf8')
      .trim()
      .split('\n');
    expect(counts[1]).toBe(`big.png,9000,8000,${n('field0.png') + n('field1.png')}`);
  }, 600_000);

  it('bmc data slide writes a slide that bmc detect reads (JPEG tiles, as Aperio SVS)', () => {
    const file = join(dir, 'synth.tif');
    const g = spawnSync(
      process.execPath,
      [BIN, 'data', 'slide', '--out', file, '--side', '3000', '--fields', '4'],
      {
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    expect(g.status, g.stderr).toBe(0);
    expect(g.stdout).toMatch(/3000 x 3000 pyramidal BigTIFF \(jpeg tiles\), 4 fields, \d+ cells/);
    const r = bmc([file, '-o', join(dir, 'out-synth')]);
    expect(r.status, r.stderr).toBe(0);
    const [, run, planned] = /(\d+) of (\d+) tiles run/.exec(r.stderr)!.map(Number) as number[];
    expect(run).toBeLessThan(planned!);
    const count = Number(
      readFileSync(join(dir, 'out-synth', 'counts.csv'), 'utf8')
        .trim()
        .split('\n')[1]!
        .split(',')[3],
    );
    expect(count).toBeGreaterThan(10);
    const bad = spawnSync(
      process.execPath,
      [BIN, 'data', 'slide', '--out', file, '--side', '500', '--fields', '4'],
      {
        encoding: 'utf8',
      },
    );
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('bmc: --fields 4 --side 500: 2 x 2 fields of 320 px do not fit\n');
  }, 600_000);

  it('writes a small overview PNG', async () => {
    const m = await sharp(join(dir, 'out-slide', 'slides', 'slide.overview.png')).metadata();
    expect(m.format).toBe('png');
    expect(Math.max(m.width!, m.height!)).toBeLessThanOrEqual(2048);
    expect(m.width).toBe(m.height);
  });
});
