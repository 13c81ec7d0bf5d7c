import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSmearSlide } from '@bmc/data';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CellClassifier, loadCellClassifier } from '../src/cell-classifier.js';
import { detectCommand } from '../src/detect-command.js';
import { decodeToPixels } from '../src/image.js';
import { classifySlideCells } from '../src/slide/classify-slide.js';
import { openSlide } from '../src/slide/open.js';
import { writeUntrainedClassifier } from './classifier-fixture.js';
import { PACKAGE_ROOT, TINY_MODEL } from './helpers.js';

// The second stage on slides: cells are typed from region reads, never from the decoded slide. The
// reference is the same classifier on the whole decoded level-0 image (small enough here), which is
// what `bmc detect --classifier` does for an ordinary image. Fields touch the slide's corners, so
// crop windows run past the slide's edges and the clamped border pixels must agree too.
const SIDE = 2048;
const FIELD = 320;
const CLASSES = ['blast', 'lymphocyte', 'myelocyte'];

describe('slides with a cell-type classifier', () => {
  let dir: string;
  let slideFile: string;
  let classifierFile: string;
  let classifier: CellClassifier;
  let boxes: [number, number, number, number][];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bmc-slide-classifier-'));
    await tf.setBackend('cpu');
    classifierFile = join(dir, 'cls.onnx');
    await writeUntrainedClassifier(classifierFile, CLASSES);
    slideFile = join(dir, 'slide.tif');
    const fields = await writeSmearSlide(slideFile, {
      seed: 5,
      width: SIDE,
      height: SIDE,
      fields: [
        [0, 0],
        [SIDE - FIELD, SIDE - FIELD],
        [900, 300],
      ],
      fieldSize: FIELD,
      margin: 8,
    });
    boxes = fields.flatMap((f) => {
      const out: [number, number, number, number][] = [];
      for (let i = 0; i < f.boxes.length; i += 4)
        out.push([f.boxes[i]! + f.x, f.boxes[i + 1]! + f.y, f.boxes[i + 2]! + f.x, f.boxes[i + 3]! + f.y]);
      return out;
    });
    classifier = await loadCellClassifier(classifierFile, 0.5, 1);
  }, 120_000);
  afterAll(async () => {
    await classifier?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('region reads give every cell the type and probability the whole decoded image gives', async () => {
    expect(boxes.length).toBeGreaterThan(10);
    const whole = await classifier.classify(await decodeToPixels(slideFile), boxes);
    const slide = await openSlide(slideFile);
    // Small blocks: many region reads, cells near block and slide edges.
    const regions = await classifySlideCells(classifier, slide, slide.levels[0]!, boxes, 256);
    expect(regions).toHaveLength(whole.length);
    for (const [i, w] of whole.entries()) {
      expect(regions[i]!.type, `cell ${i}`).toBe(w.type);
      expect(regions[i]!.probability).toBeCloseTo(w.probability, 5);
    }
  }, 120_000);

  it('bmc detect --classifier on a slide: types in cell-types.json and the GeoJSON, a differential that adds up', async () => {
    const out = join(dir, 'out');
    const r = spawnSync(
      process.execPath,
      [
        join(PACKAGE_ROOT, 'bin', 'bmc-infer.mjs'),
        'detect',
        slideFile,
        '-m',
        TINY_MODEL,
        '--classifier',
        classifierFile,
        '--classifier-threshold',
        '0.4',
        '--score',
        '0.2',
        '--tile',
        '320',
        '--no-progress',
        '-o',
        out,
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const typed = JSON.parse(await readFile(join(out, 'cell-types.json'), 'utf8')) as {
      cells: { type: string; probability: number }[];
    }[];
    const cells = typed[0]!.cells;
    expect(cells.length).toBeGreaterThan(0);
    for (const c of cells)
      expect(c.type === 'unclassified' ? c.probability < 0.4 : c.probability >= 0.4).toBe(true);
    // differential.csv: file, nucleated, then count and % per type (unclassified last); the slide's row.
    const [header, row] = (await readFile(join(out, 'differential.csv'), 'utf8')).trim().split('\n');
    const names = header!
      .split(',')
      .slice(2)
      .filter((_, k) => k % 2 === 0);
    const values = row!.split(',').slice(1).map(Number);
    expect(values[0]).toBe(cells.length);
    const counts = names.map((_, k) => values[1 + 2 * k]!);
    const percents = names.map((_, k) => values[2 + 2 * k]!);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(cells.length);
    expect(percents.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 1);
    for (const [k, name] of names.entries())
      expect(counts[k], name).toBe(cells.filter((c) => c.type === name).length);
    const geo = JSON.parse(await readFile(join(out, 'slides', 'slide.geojson'), 'utf8')) as {
      features: { properties: { classification: { name: string } } }[];
    };
    expect(geo.features.map((f) => f.properties.classification.name)).toEqual(cells.map((c) => c.type));
  }, 300_000);

  it('a loaded classifier (what bmc serve hands its slide jobs) types the cells as its file does, at its own threshold, and stays open', async () => {
    const run = (name: string, extra: Partial<Parameters<typeof detectCommand>[0]>) =>
      detectCommand({
        inputs: [slideFile],
        model: TINY_MODEL,
        out: join(dir, name),
        scoreThreshold: 0.2,
        tileSize: 320,
        annotate: false,
        progress: false,
        threads: 1,
        log: () => {},
        ...extra,
      });
    const byFile = await run('by-file', { classifier: classifierFile, classifierThreshold: 0.5 });
    const loaded = await run('loaded', { classifier });
    const d = loaded.processed[0]!.differential!;
    expect(d.total).toBeGreaterThan(0);
    expect(d.threshold).toBe(0.5); // the loaded classifier's threshold
    expect(d).toEqual(byFile.processed[0]!.differential);
    expect(await readFile(join(dir, 'loaded', 'slides', 'slide.geojson'), 'utf8')).toBe(
      await readFile(join(dir, 'by-file', 'slides', 'slide.geojson'), 'utf8'),
    );
    // Not disposed by the run: the service keeps using it.
    expect(await classifier.classify(await decodeToPixels(slideFile), boxes.slice(0, 2))).toHaveLength(2);
  }, 300_000);
});
