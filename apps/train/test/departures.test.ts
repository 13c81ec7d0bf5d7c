import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAssigner, PaaAssigner } from '@bmc/assigners';
import { buildDetector } from '@bmc/heads-iou';
import { modelStats } from '@bmc/metrics/model-stats';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ablation, ablationVariants } from '../src/commands/ablation.js';
import { loadConfig } from '../src/config/load.js';
import type { TrainConfigInput } from '../src/config/schema.js';
import { lossOptions, toDetectorConfig } from '../src/train/detector.js';
import { smallSet } from './small-config.js';

// docs/departures.md: every row's switch, as a user sets it (preset, --set, or a bmc ablation variant).

const variant = (name: string): TrainConfigInput => {
  const v = ablationVariants().find((x) => x.name === name);
  if (!v) throw new Error(`no ablation variant '${name}'`);
  return v.overrides;
};

describe('thesis-as-written: every departure switched back', () => {
  const c = loadConfig({ preset: 'thesis-as-written' });
  const base = loadConfig({ preset: 'baseline' });

  it("anchors and levels are the baseline's (P3-P7, sizes 32..512 x octaves, 9 per location)", () => {
    const ours = toDetectorConfig(c, 1);
    const theirs = toDetectorConfig(base, 1);
    expect(ours.neck.levels).toEqual([3, 4, 5, 6, 7]);
    expect(ours.anchors).toEqual(theirs.anchors);
    // RetinaNet's rule, written out: base 4 x stride, octave scales 2^0, 2^(1/3), 2^(2/3), truncated.
    expect(ours.anchors.levels[0]).toEqual({ stride: 8, sizes: [32, 40, 50] });
    expect(ours.anchors.levels[4]).toEqual({ stride: 128, sizes: [512, 645, 812] });
    expect(ours.neck.kind).toBe('pan-attn');
    expect(ours.head.iouBranch).toBe(true);
  });

  it('IoU BCE over all anchors, no warm-up, no clipping, no augmentation, OTA without row normalisation', () => {
    expect(lossOptions(c).iouLossOn).toBe('all');
    expect(lossOptions(loadConfig({ preset: 'thesis' })).iouLossOn).toBeUndefined();
    expect([c.optim.warmupIters, c.optim.clipGradNorm]).toEqual([0, 0]);
    expect(c.data.augment).toMatchObject({ hflip: 0, vflip: 0, scale: [1, 1], colorJitter: 0, hed: 0 });
    expect(c.assigner).toEqual({ type: 'ota', options: { rescale: false } });
    // The schedule the thesis states is unchanged.
    expect(c.optim).toMatchObject({ type: 'sgd', lr: 0.001, momentum: 0.9, weightDecay: 5e-4, epochs: 36 });
    expect([c.optim.steps, c.optim.batchSize]).toEqual([[16, 28], 16]);
  });

  it("the PAA switch reaches the assigner: selection 'thesis' from the config", () => {
    const cfg = loadConfig({ preset: 'tiny', overrides: variant('thesis: PAA split by the mixture means') });
    const a = createAssigner({ type: cfg.assigner.type, ...cfg.assigner.options } as never);
    expect(a).toBeInstanceOf(PaaAssigner);
    expect((a as PaaAssigner).options.selection).toBe('thesis');
  });
});

describe('the ablation', () => {
  it("'neither module' is the thesis's baseline network: R50-FPN P3-P7, no IoU branch, class score", () => {
    const neither = loadConfig({ preset: 'thesis', overrides: variant('fpn') });
    const ours = toDetectorConfig(neither, 11);
    const baseline = toDetectorConfig(loadConfig({ preset: 'baseline' }), 11);
    expect(ours.backbone.depth).toBe(50);
    expect(ours.neck).toEqual(baseline.neck);
    expect(ours.head).toEqual(baseline.head);
    expect(ours.anchors).toEqual(baseline.anchors);
    expect(ours.postprocess.scoreMode).toBe('cls');
    // The ablation-fpn-noiou preset is the same cell.
    expect(toDetectorConfig(loadConfig({ preset: 'ablation-fpn-noiou' }), 11).neck).toEqual(baseline.neck);
  });

  it('every departure has a variant, and every variant loads on the tiny and thesis presets', () => {
    const names = ablationVariants().map((v) => v.name);
    expect(names.filter((n) => n.startsWith('thesis: '))).toHaveLength(5);
    for (const preset of ['tiny', 'thesis']) {
      for (const v of ablationVariants())
        expect(() => loadConfig({ preset, overrides: v.overrides })).not.toThrow();
    }
    expect(typeof ablation).toBe('function');
  });
});

describe('bmc ablation trains the departure variants', () => {
  it('two thesis switches on a tiny synthetic set: one row each, AP in [0, 1], one combined table', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'bmc-ablation-'));
    try {
      const r = await ablation({
        preset: 'tiny',
        set: [...smallSet(128, 8, 4), 'optim.epochs=1', 'run.evalEvery=0'],
        runsDir: runs,
        only: ['thesis: IoU BCE', 'thesis: PAA'],
        log: () => {},
      });
      expect(r.rows.map((x) => x.variant)).toEqual([
        'thesis: IoU BCE over all anchors',
        'thesis: PAA split by the mixture means',
      ]);
      for (const row of r.rows) {
        expect(row.steps).toBe(2);
        expect(row.AP50).toBeGreaterThanOrEqual(0);
        expect(row.AP50).toBeLessThanOrEqual(1);
      }
      expect(readFileSync(join(r.dir, 'ablation.md'), 'utf8')).toContain(
        '| thesis: PAA split by the mixture means | 2 |',
      );
      // Each run's saved config carries its switch.
      expect(readFileSync(join(r.rows[0]!.run, 'config.yaml'), 'utf8')).toMatch(/iouLossOn: all/);
      expect(readFileSync(join(r.rows[1]!.run, 'config.yaml'), 'utf8')).toMatch(/selection: thesis/);
    } finally {
      rmSync(runs, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('cost of the layouts (mmcv GFLOPs at 800x832, 11 classes, P6 from C5, as the thesis tables)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });
  const gflops = (preset: string) => {
    const c = loadConfig({
      preset,
      overrides: { model: { neck: { extraFrom: 'c5' }, backbone: { frozenBatchNorm: false } } },
    });
    const det = buildDetector(toDetectorConfig(c, 11));
    try {
      return modelStats(det.model, { inputShape: [800, 832, 3] }).gflops;
    } finally {
      det.dispose();
    }
  };

  it("the baseline anchor layout costs the baseline + a few % (the thesis: +3.8%); bmc's N2-N5 costs 2.9x", () => {
    const base = gflops('baseline');
    const asWritten = gflops('thesis-as-written');
    const n2n5 = gflops('thesis');
    expect(base).toBeCloseTo(135.73, 1); // the thesis's baseline figure (metrics' own fixture test)
    // Measured 140.11 G: 4 PAN-attn steps (2 convs each) at strides 16..128 plus the IoU branch.
    expect(asWritten / base).toBeGreaterThan(1.01);
    expect(asWritten / base).toBeLessThan(1.06);
    expect(n2n5 / base).toBeGreaterThan(2.5);
  }, 180_000);
});
