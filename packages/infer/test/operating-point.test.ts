import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BmcMetadata, OperatingPoint } from '@bmc/export/metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectCommand } from '../src/detect-command.js';
import { decodeToPixels } from '../src/image.js';
import { type Detector, loadDetector } from '../src/model.js';
import { countingThreshold, describeCountingThreshold } from '../src/pipeline/operating-point.js';
import { createServer } from '../src/server.js';
import { smearPng, TINY_MODEL, writeSmear } from './helpers.js';
import { withOperatingPoint } from './operating-point-model.js';

const OP: Omit<OperatingPoint, 'scoreThreshold'> = {
  precision: 0.9,
  recall: 0.8,
  f1: 0.847,
  iou: 0.5,
  split: 'val',
  step: 120,
};

describe('counting threshold: option, then operating point, then candidate threshold', () => {
  const meta = { nms: { scoreThreshold: 0.05 } } as BmcMetadata;
  it('picks by precedence and says why', () => {
    const withOp = { ...meta, operatingPoint: { ...OP, scoreThreshold: 0.4 } } as BmcMetadata;
    expect(countingThreshold(withOp)).toMatchObject({ scoreThreshold: 0.4, source: 'operating-point' });
    expect(countingThreshold(withOp, 0.7)).toMatchObject({ scoreThreshold: 0.7, source: 'option' });
    expect(countingThreshold(meta)).toEqual({ scoreThreshold: 0.05, source: 'candidates' });
    expect(describeCountingThreshold(countingThreshold(withOp))).toBe(
      "score >= 0.400 (the model's operating point: best F1 0.847 at IoU 0.5 on val at step 120, precision 0.900, recall 0.800)",
    );
    expect(describeCountingThreshold(countingThreshold(withOp, 0.7), '--score')).toBe(
      'score >= 0.700 (set by --score)',
    );
    expect(describeCountingThreshold(countingThreshold(meta), '--score')).toMatch(
      /^score > 0\.050 \(the model carries no operating point.*pass --score\)$/,
    );
  });
});

describe('a model with an operating point: bmc detect, the service', () => {
  let dir: string;
  let images: string;
  let model: string;
  let threshold: number;
  let plain: Detector;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bmc-op-'));
    images = join(dir, 'images');
    await writeSmear(images, 'a.png', 11);
    await writeSmear(images, 'b.png', 12, 400, 300);
    // A threshold between two candidate scores of the first image, well inside the candidates:
    // rounding of scores in results.json cannot move a detection across it.
    plain = await loadDetector(TINY_MODEL, { threads: 1 });
    const scores = (await plain.detect(await decodeToPixels(join(images, 'a.png')))).detections.map(
      (d) => d.score,
    );
    const mid = Math.floor(scores.length / 2);
    let k = mid;
    while (k + 1 < scores.length && scores[k]! - scores[k + 1]! < 2e-3) k++;
    threshold = (scores[k]! + scores[k + 1]!) / 2;
    model = await withOperatingPoint(TINY_MODEL, join(dir, 'with-op.onnx'), {
      ...OP,
      scoreThreshold: threshold,
    });
  });
  afterAll(async () => {
    await plain?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts, annotates and crops at the operating point; results.json keeps every candidate', async () => {
    const lines: string[] = [];
    const res = await detectCommand({
      inputs: [images],
      model,
      out: join(dir, 'out'),
      crops: true,
      progress: false,
      threads: 1,
      log: (l) => lines.push(l),
    });
    expect(res.counting).toMatchObject({ scoreThreshold: threshold, source: 'operating-point' });
    expect(lines).toContain(`counting cells at ${describeCountingThreshold(res.counting)}`);
    const results = JSON.parse(await readFile(res.outputs.results, 'utf8')) as Array<{
      image_id: number;
      score: number;
    }>;
    const counts = (await readFile(res.outputs.counts, 'utf8')).trim().split('\n').slice(1);
    let candidates = 0;
    for (const p of res.processed) {
      const mine = results.filter((r) => r.image_id === p.id);
      candidates += mine.length;
      // The candidates of this image, straight from the library at the model's candidate threshold.
      const lib = await plain.detect(await decodeToPixels(p.file));
      expect(mine.length).toBe(lib.detections.length);
      expect(p.count).toBe(mine.filter((r) => r.score >= threshold).length);
      expect(counts.find((l) => l.startsWith(p.file.slice(images.length + 1)))).toMatch(
        new RegExp(`,${p.count}(,|$)`),
      );
      const crops = await readdir(join(res.outputs.crops!, p.file.slice(images.length + 1, -4))).catch(
        () => [],
      );
      expect(crops).toHaveLength(p.count);
    }
    const counted = res.processed.reduce((s, p) => s + p.count, 0);
    expect(counted).toBeGreaterThan(0);
    expect(counted).toBeLessThan(candidates);
  });

  it('--score overrides both the counts and results.json', async () => {
    const res = await detectCommand({
      inputs: [images],
      model,
      out: join(dir, 'out-score'),
      scoreThreshold: 0.8,
      annotate: false,
      progress: false,
      threads: 1,
      log: () => {},
    });
    expect(res.counting).toMatchObject({ scoreThreshold: 0.8, source: 'option' });
    const results = JSON.parse(await readFile(res.outputs.results, 'utf8')) as Array<{ score: number }>;
    expect(results.every((r) => r.score > 0.8 - 1e-4)).toBe(true);
    expect(results).toHaveLength(res.processed.reduce((s, p) => s + p.count, 0));
  });

  it('a model without an operating point counts every candidate, with a notice', async () => {
    const lines: string[] = [];
    const res = await detectCommand({
      inputs: [join(images, 'a.png')],
      model: plain,
      out: join(dir, 'out-plain'),
      annotate: false,
      progress: false,
      log: (l) => lines.push(l),
    });
    expect(res.counting.source).toBe('candidates');
    expect(lines.some((l) => /carries no operating point/.test(l))).toBe(true);
    const results = JSON.parse(await readFile(res.outputs.results, 'utf8')) as unknown[];
    expect(res.processed[0]!.count).toBe(results.length);
  });

  it('the service counts at it, GET /v1/model shows both thresholds, ?score= overrides', async () => {
    const server = await createServer({ model, logger: false, viewer: false, threads: 1 });
    try {
      const info = (await server.app.inject({ method: 'GET', url: '/v1/model' })).json();
      expect(info.thresholds).toEqual({
        candidates: plain.meta.nms.scoreThreshold,
        count: {
          scoreThreshold: threshold,
          source: 'operating-point',
          operatingPoint: { ...OP, scoreThreshold: threshold },
        },
      });
      expect(info.metadata.operatingPoint.scoreThreshold).toBe(threshold);
      const png = (await smearPng(11)).png;
      const lib = await plain.detect(await decodeToPixels(png));
      const post = (url: string) =>
        server.app.inject({ method: 'POST', url, headers: { 'content-type': 'image/png' }, payload: png });
      const body = (await post('/v1/detect')).json();
      const above = lib.detections.filter((d) => d.score >= threshold).length;
      expect(body.count).toBe(above);
      expect(body.detections).toHaveLength(above);
      expect(body.threshold).toMatchObject({ scoreThreshold: threshold, source: 'operating-point' });
      const cand = plain.meta.nms.scoreThreshold;
      const all = (await post(`/v1/detect?score=${cand}`)).json();
      expect(all.threshold).toMatchObject({ scoreThreshold: cand, source: 'option' });
      expect(all.count).toBe(lib.detections.length);
      expect(all.count).toBeGreaterThan(body.count);
    } finally {
      await server.close();
    }
  });
});
