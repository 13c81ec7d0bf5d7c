import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePng, generateSmear } from '@bmc/data';
import { loadCheckpoint, readBmcMetadata } from '@bmc/export';
import { createServer, decodeToPixels, loadDetector } from '@bmc/infer';
import { buildReport, type CocoDetection, evaluateCoco } from '@bmc/metrics';
import { afterAll, describe, expect, it } from 'vitest';
import { readJsonl } from '../src/run/jsonl-log.js';
import { describeOperatingPoint, operatingPointOf } from '../src/train/operating-point.js';
import { smallSet } from './small-config.js';

const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const bmc = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
};

/** Four cells in one image; detections either sit exactly on a cell (TP) or far from all (FP). */
function evaluation(outcomes: Array<['tp' | 'fp', number]>) {
  const cells = [
    [10, 10, 20, 20],
    [50, 10, 20, 20],
    [10, 50, 20, 20],
    [50, 50, 20, 20],
  ];
  const gt = {
    images: [{ id: 1, width: 200, height: 200 }],
    annotations: cells.map((bbox, k) => ({
      id: k + 1,
      image_id: 1,
      category_id: 1,
      bbox,
      area: 400,
      iscrowd: 0,
    })),
    categories: [{ id: 1, name: 'cell' }],
  };
  let tp = 0;
  let fp = 0;
  const dt: CocoDetection[] = outcomes.map(([o, score]) => ({
    image_id: 1,
    category_id: 1,
    bbox: o === 'tp' ? cells[tp++]! : [120 + 15 * fp++, 150, 12, 12],
    score,
  }));
  return { report: buildReport(evaluateCoco(gt, dt)) };
}

describe('operating point: best F1 at IoU 0.5 over validation detections', () => {
  it('picks the hand-computed best cut', () => {
    // Cuts (score >= t): 0.9 -> P 1 R .25 F1 .4; 0.8 -> 1, .5, .667; 0.7 -> .667, .5, .571;
    // 0.6 -> .75, .75, .75 (best); 0.3 -> .6, .75, .667; 0.2 -> .5, .75, .6. One cell is never found.
    const ev = evaluation([
      ['tp', 0.9],
      ['tp', 0.8],
      ['fp', 0.7],
      ['tp', 0.6],
      ['fp', 0.3],
      ['fp', 0.2],
    ]);
    const op = operatingPointOf(ev, 42)!;
    expect(op).toMatchObject({ iou: 0.5, split: 'val', step: 42 });
    expect(op.scoreThreshold).toBeCloseTo(0.6, 6);
    expect(op.precision).toBeCloseTo(0.75, 9);
    expect(op.recall).toBeCloseTo(0.75, 9);
    expect(op.f1).toBeCloseTo(0.75, 9);
    expect(describeOperatingPoint(op)).toBe('count at score >= 0.600 (F1 0.750, P 0.750, R 0.750)');
  });

  it('has none when no detection matches a cell', () => {
    const ev = evaluation([
      ['fp', 0.9],
      ['fp', 0.4],
    ]);
    expect(operatingPointOf(ev, 1)).toBeUndefined();
    expect(describeOperatingPoint(undefined)).toMatch(/no counting threshold/);
    expect(operatingPointOf(evaluation([]), 1)).toBeUndefined();
  });
});

describe('a trained model carries its operating point to bmc detect and the service', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bmc-op-e2e-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('training chooses it on validation, export records it, detect and the service count at it', async () => {
    const set = [...smallSet(128, 24, 8), 'optim.warmupIters=5', 'run.evalEvery=1'];
    const train = bmc(
      'train',
      '--preset',
      'tiny',
      '--runs',
      dir,
      '--no-progress',
      '--epochs',
      '4',
      ...set.flatMap((s) => ['--set', s]),
    );
    expect(train.code, train.out).toBe(0);
    const run = /run folder: (.+)/.exec(train.out)![1]!.trim();
    expect(train.out).toMatch(/validation at step \d+ .*; count at score >= [\d.]+ \(F1/);

    // The log has one per validation; best/ keeps the one measured with its own weights.
    const log = readJsonl(readFileSync(join(run, 'log.jsonl'), 'utf8'));
    const evals = log.filter((e) => e.event === 'eval');
    const bestStep = log.filter((e) => e.event === 'best').pop()!.step;
    const atBest = evals.find((e) => e.step === bestStep)!.operatingPoint;
    expect(atBest).toMatchObject({ iou: 0.5, split: 'val', step: bestStep });
    const best = await loadCheckpoint(join(run, 'best'));
    const bestState = best.state?.train as { operatingPoint?: unknown } | undefined;
    expect(bestState?.operatingPoint).toEqual(atBest);
    best.model.dispose();

    const exp = bmc('export', run);
    expect(exp.code, exp.out).toBe(0);
    expect(exp.out).toMatch(/operating point: count at score >= /);
    const model = join(run, 'model.onnx');
    const meta = readBmcMetadata(new Uint8Array(readFileSync(model)));
    expect(meta.operatingPoint).toEqual(atBest);
    expect(meta.nms.scoreThreshold).toBe(0.05); // the AP threshold stays beside it
    const t = meta.operatingPoint!.scoreThreshold;

    // Unseen smears: generator indices past every split.
    const images = join(dir, 'unseen');
    mkdirSync(images);
    for (let i = 0; i < 3; i++) {
      const s = generateSmear(1, 5000 + i, { width: 128, height: 128 });
      writeFileSync(join(images, `smear_${i}.png`), await encodePng(s.image));
    }
    const det = bmc('detect', '-m', model, images, '-o', join(dir, 'det'), '--no-progress');
    expect(det.code, det.out).toBe(0);
    expect(det.out).toContain(`counting cells at score >= ${t.toFixed(3)} (the model's operating point`);
    const results = JSON.parse(readFileSync(join(dir, 'det', 'results.json'), 'utf8')) as Array<{
      image_id: number;
      score: number;
    }>;
    const rows = readFileSync(join(dir, 'det', 'counts.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    expect(rows).toHaveLength(3);
    rows.forEach((row, k) => {
      // results.json keeps every candidate (COCO results for AP); counts keep score >= t.
      const mine = results.filter((r) => r.image_id === k + 1);
      expect(Number(row.split(',')[3])).toBe(mine.filter((r) => r.score >= t).length);
    });

    // The service: `count` at the operating point is far below the max-detections cap, where
    // counting every candidate above 0.05 is not.
    const detector = await loadDetector(model, { threads: 1 });
    const server = await createServer({ model: detector, logger: false, viewer: false });
    try {
      const png = readFileSync(join(images, 'smear_0.png'));
      const post = (url: string) =>
        server.app.inject({ method: 'POST', url, headers: { 'content-type': 'image/png' }, payload: png });
      const body = (await post('/v1/detect')).json();
      const all = (await detector.detect(await decodeToPixels(png))).detections;
      expect(body.count).toBe(all.filter((d) => d.score >= t).length);
      expect(body.count).toBeLessThan(meta.nms.maxDetections / 2);
      const candidates = (await post('/v1/detect?score=0.05')).json();
      expect(candidates.count).toBe(all.length);
      expect(candidates.count).toBeGreaterThan(body.count);
      console.log(
        `operating point ${t.toFixed(3)} (val F1 ${meta.operatingPoint!.f1.toFixed(3)}): service count ${body.count}, ` +
          `candidates above 0.05 ${candidates.count} (cap ${meta.nms.maxDetections})`,
      );
      const info = (await server.app.inject({ method: 'GET', url: '/v1/model' })).json();
      expect(info.thresholds).toMatchObject({
        candidates: 0.05,
        count: { scoreThreshold: t, source: 'operating-point' },
      });
    } finally {
      await server.close();
      await detector.dispose();
    }
  }, 900_000);
});
