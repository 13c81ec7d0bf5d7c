import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeCrops } from '@bmc/classify';
import { synthCrops } from '@bmc/classify/train';
import { loadCheckpoint, readOnnxMetadataProps } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBmc as bmc, expectClassifierLearnt, ortNode as ort } from './bmc-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'bmc-classify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('bmc classify on synthetic cell types (the way a user runs it)', () => {
  const run = join(dir, 'run');
  it('training reduces the loss, reaches a stated accuracy on held-out synthetic cells, leaks no tensor', async () => {
    const r = await bmc([
      'classify',
      'train',
      '--synthetic',
      '40',
      '--out',
      run,
      '--crop-size',
      '32',
      '--width',
      '0.125',
      '--epochs',
      '4',
      '--batch',
      '24',
      '--lr',
      '0.003',
      '--seed',
      '3',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/stratified split seed 3: train \d+, val \d+, test \d+/);
    expectClassifierLearnt(run);
    const rep = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
    // Stated bar: balanced accuracy >= 0.6 on the held-out split (chance 1/6) after 4 short epochs.
    expect(rep.test.balancedAccuracy).toBeGreaterThanOrEqual(0.6);
    expect(rep.test.perClass).toHaveLength(6);
    expect(readFileSync(join(run, 'confusion.svg'), 'utf8')).toMatch(/^<svg/);
    expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain('Balanced accuracy');
  }, 900_000);

  it('exports to ONNX with metadata; onnxruntime matches tfjs on the same crops', async () => {
    const onnx = join(dir, 'cls.onnx');
    const r = await bmc(['classify', 'export', run, '--out', onnx]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const session = await ort.InferenceSession.create(onnx);
    const crops = synthCrops(2, { cropSize: 32, margin: 0.15 }, 77).crops.slice(0, 8);
    const nhwc = normalizeCrops(crops);
    const n = crops.length;
    const nchw = new Float32Array(nhwc.length);
    for (let b = 0; b < n; b++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++)
          for (let c = 0; c < 3; c++)
            nchw[((b * 3 + c) * 32 + y) * 32 + x] = nhwc[((b * 32 + y) * 32 + x) * 3 + c]!;
    const out = await session.run({ crops: new ort.Tensor('float32', nchw, [n, 3, 32, 32]) });
    const onnxLogits = out.logits!.data as Float32Array;
    const ck = await loadCheckpoint(join(run, 'best'));
    const t = tf.tensor4d(nhwc, [n, 32, 32, 3]);
    const tfLogits = (ck.model.predict(t) as tf.Tensor).dataSync();
    t.dispose();
    ck.model.dispose();
    expect(onnxLogits.length).toBe(n * 6);
    let maxDiff = 0;
    let scale = 0;
    for (let i = 0; i < onnxLogits.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(onnxLogits[i]! - tfLogits[i]!));
      scale = Math.max(scale, Math.abs(tfLogits[i]!));
    }
    expect(maxDiff / scale).toBeLessThan(1e-4);
    const meta = JSON.parse(readOnnxMetadataProps(readFileSync(onnx), onnx).bmc_classifier!);
    expect(meta.classNames).toEqual(['blast', 'lymphocyte', 'band', 'segmented', 'eosinophil', 'plasma']);
    expect(meta.cropSize).toBe(32);
    expect(meta.normalization.mean).toEqual([0.485, 0.456, 0.406]);
    expect(meta.cropRule).toMatch(/square centred on the box/);
  }, 300_000);
});

describe('bmc detect --classifier: the differential count', () => {
  it('gives every counted cell a type; per image and per run the counts add up to the cells, percentages to 100', async () => {
    const onnx = join(dir, 'cls.onnx'); // exported by the test above
    const smears = join(dir, 'smears');
    expect(
      (
        await bmc([
          'data',
          'synth',
          '--out',
          smears,
          '--train',
          '0',
          '--val',
          '0',
          '--test',
          '2',
          '--seed',
          '5',
        ])
      ).code,
    ).toBe(0);
    const out = join(dir, 'detect');
    const r = await bmc([
      'detect',
      join(smears, 'images', 'test'),
      '--out',
      out,
      '--classifier',
      onnx,
      '--no-annotate',
    ]);
    expect(`${r.code} ${r.stderr}`).toMatch(/^0 /);
    expect(r.stderr).toMatch(/differential \(\d+ nucleated cells/);
    const counts = readFileSync(join(out, 'counts.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    const rows = readFileSync(join(out, 'differential.csv'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(','));
    const header = rows[0]!;
    expect(header.slice(0, 2)).toEqual(['file', 'nucleated']);
    expect(header).toContain('unclassified');
    const body = rows.slice(1);
    expect(body).toHaveLength(3); // two images and "all images"
    const sums = new Array(header.length).fill(0);
    for (const [i, row] of body.entries()) {
      const counted = row
        .slice(2)
        .filter((_, j) => j % 2 === 0)
        .map(Number);
      const pct = row
        .slice(2)
        .filter((_, j) => j % 2 === 1)
        .map(Number);
      const total = Number(row[1]);
      expect(counted.reduce((a, b) => a + b, 0)).toBe(total);
      if (total > 0) expect(Math.abs(pct.reduce((a, b) => a + b, 0) - 100)).toBeLessThan(0.1);
      if (i < 2) {
        // Every detected (counted) cell of the image is in its differential: no platelet class here.
        expect(total).toBe(Number(counts[i]![3]));
        row.forEach((v, j) => {
          if (j > 0) sums[j] += Number(v);
        });
      }
    }
    const all = body[2]!;
    expect(all[0]).toBe('all images');
    for (let j = 1; j < header.length; j++)
      if (!header[j]!.endsWith('%')) expect(Number(all[j])).toBe(sums[j]);
    const types = JSON.parse(readFileSync(join(out, 'cell-types.json'), 'utf8'));
    expect(types).toHaveLength(2);
    for (const c of types.flatMap((t: { cells: unknown[] }) => t.cells))
      expect(c.probability).toBeGreaterThan(0);
  }, 300_000);

  it('bmc serve --classifier: every answered cell has a type and probability; the differential adds up', async () => {
    const { createServer } = await import('@bmc/infer');
    const { modelPath } = await import('@bmc/models');
    const server = await createServer({
      model: modelPath(),
      classifier: join(dir, 'cls.onnx'),
      classifierThreshold: 0.6,
      logger: false,
      viewer: false,
    });
    try {
      const model = (await server.app.inject({ url: '/v1/model' })).json();
      expect(model.classifier.classNames).toEqual([
        'blast',
        'lymphocyte',
        'band',
        'segmented',
        'eosinophil',
        'plasma',
      ]);
      expect(model.classifier.threshold).toBe(0.6);
      const onnx = await server.app.inject({ url: '/v1/classifier.onnx' });
      expect(onnx.statusCode).toBe(200);
      expect(onnx.rawPayload.length).toBe(readFileSync(join(dir, 'cls.onnx')).length);
      const image = readdirSync(join(dir, 'smears', 'images', 'test')).sort()[0]!;
      const res = await server.app.inject({
        method: 'POST',
        url: '/v1/detect',
        headers: { 'content-type': 'image/png' },
        payload: readFileSync(join(dir, 'smears', 'images', 'test', image)),
      });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.count).toBeGreaterThan(0);
      const names = [...model.classifier.classNames, 'unclassified'];
      for (const d of body.detections) {
        expect(names).toContain(d.cellType);
        expect(d.cellTypeProbability).toBeGreaterThan(0);
        expect(d.cellTypeProbability).toBeLessThanOrEqual(1);
        // Below the threshold a cell is unclassified, never guessed; at or above it, typed.
        expect(d.cellType === 'unclassified').toBe(d.cellTypeProbability < 0.6);
      }
      const diff = body.differential;
      expect(diff.threshold).toBe(0.6);
      expect(diff.rows.map((r: { type: string }) => r.type)).toEqual(names);
      // Counts add up to the answered cells and match their types; percentages add up to 100.
      expect(diff.total).toBe(body.count);
      for (const r of diff.rows)
        expect(r.count).toBe(
          body.detections.filter((d: { cellType: string }) => d.cellType === r.type).length,
        );
      const pct = diff.rows.reduce((a: number, r: { percent: number }) => a + r.percent, 0);
      expect(Math.abs(pct - 100)).toBeLessThan(1e-9);
    } finally {
      await server.close();
    }
  }, 120_000);

  it('a file that is not a classifier: exit 2 naming it', async () => {
    const bogus = join(dir, 'bogus.onnx');
    writeFileSync(bogus, 'not onnx');
    const r = await bmc([
      'detect',
      join(dir, 'smears', 'images', 'test'),
      '--out',
      join(dir, 'd2'),
      '--classifier',
      bogus,
    ]);
    expect(`${r.code} ${r.stderr}`).toMatch(
      new RegExp(`^2 [\\s\\S]*${bogus.replace(/[.]/g, '\\.')}: not a bmc cell classifier`),
    );
  }, 120_000);
});

describe('bmc classify train: bad input', () => {
  it('a missing folder, a folder without classes and an unreadable image: exit 2, the path named, no stack', async () => {
    const missing = await bmc([
      'classify',
      'train',
      '--folders',
      join(dir, 'nope'),
      '--out',
      join(dir, 'o1'),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${join(dir, 'nope')}: cannot read the class folder`);
    const flat = join(dir, 'flat');
    mkdirSync(flat);
    writeFileSync(join(flat, 'a.png'), 'x');
    const noClasses = await bmc(['classify', 'train', '--folders', flat, '--out', join(dir, 'o2')]);
    expect(`${noClasses.code} ${noClasses.stderr}`).toMatch(/^2 /);
    expect(noClasses.stderr).toContain('expected one sub-folder per class');
    const bad = join(dir, 'bad');
    mkdirSync(join(bad, 'a'), { recursive: true });
    mkdirSync(join(bad, 'b'), { recursive: true });
    writeFileSync(join(bad, 'a', 'cell.png'), 'not a png');
    writeFileSync(join(bad, 'b', 'cell.png'), 'not a png');
    const unreadable = await bmc(['classify', 'train', '--folders', bad, '--out', join(dir, 'o3')]);
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toContain(`${join(bad, 'a', 'cell.png')}: cannot decode the image`);
    for (const r of [missing, noClasses, unreadable]) expect(r.stderr).not.toMatch(/\n\s+at /);
    const noRun = await bmc(['classify', 'train', '--resume', join(dir, 'nope')]);
    expect(noRun.code).toBe(2);
    expect(noRun.stderr).toContain(
      `${join(dir, 'nope', 'classify-options.json')}: not a classifier run folder`,
    );
    const two = await bmc([
      'classify',
      'train',
      '--synthetic',
      '2',
      '--folders',
      bad,
      '--out',
      join(dir, 'o4'),
    ]);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('exactly one of');
  }, 300_000);
});
