import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { detectorConfig } from '@bmc/heads-iou';
import { describe, expect, it } from 'vitest';
import { ablationVariants } from '../src/commands/ablation.js';
import { loadConfig } from '../src/config/load.js';
import { ABLATION_GRID, presetNames } from '../src/config/presets.js';
import { toDetectorConfig } from '../src/train/detector.js';

// The detector configs every training preset built before toDetectorConfig stopped starting from
// heads-iou's thesis preset (it now fills every field from the training config itself). Written once
// by the old code with BMC_WRITE_DETECTOR_CONFIGS=1; a preset whose network changes on purpose
// updates its entry.
const FIXTURE = join(import.meta.dirname, 'fixtures', 'detector-configs.json');

const built = (preset: string, classes: number) =>
  JSON.parse(JSON.stringify(toDetectorConfig(loadConfig({ preset }), classes)));

describe('toDetectorConfig', () => {
  if (process.env.BMC_WRITE_DETECTOR_CONFIGS) {
    it('writes the fixture', () => {
      const all = Object.fromEntries(presetNames().map((p) => [p, { 1: built(p, 1), 11: built(p, 11) }]));
      writeFileSync(FIXTURE, `${JSON.stringify(all, null, 1)}\n`);
    });
    return;
  }
  const before = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Record<string, Record<string, unknown>>;

  it.each(Object.keys(before))('builds the same detector config for preset %s as before', (preset) => {
    expect(built(preset, 1)).toEqual(before[preset]![1]);
    expect(built(preset, 11)).toEqual(before[preset]![11]);
  });

  it("depends on nothing but the training config (not on heads-iou's thesis preset)", () => {
    // Every field comes from the config: the result has exactly heads-iou's keys, none left to a base.
    const c = toDetectorConfig(loadConfig({ preset: 'baseline' }), 3);
    expect(Object.keys(c).sort()).toEqual(Object.keys(detectorConfig('baseline')).sort());
    expect(c.neck).toEqual({
      kind: 'fpn',
      levels: [3, 4, 5, 6, 7],
      channels: 256,
      extraFrom: 'p5',
      attentionReduction: 16,
    });
    expect(c.head).toEqual({ numClasses: 3, numConvs: 4, iouBranch: false, priorProbability: 0.01 });
    expect(c.loss.iouWeight).toBe(0);
    expect(c.postprocess.scoreMode).toBe('cls');
  });
});

describe('one definition of each preset network and of the ablation grid', () => {
  it("tiny is heads-iou's tiny network, with the 48 channels the demo's README figures were measured with", () => {
    const train = toDetectorConfig(loadConfig({ preset: 'tiny' }), 1);
    const lib = detectorConfig('tiny');
    expect(train.neck.channels).toBe(48);
    expect(lib.neck.channels).toBe(48);
    expect(train.backbone).toEqual(lib.backbone);
    expect(train.neck).toEqual(lib.neck);
    expect(train.head).toEqual(lib.head);
    expect(train.anchors).toEqual(lib.anchors);
  });

  it('the ablation-* presets and bmc ablation run the same 2 x 2 grid', () => {
    expect(ABLATION_GRID.map((c) => c.key)).toEqual([
      'fpn-noiou',
      'fpn-iou',
      'pan-attn-noiou',
      'pan-attn-iou',
    ]);
    expect(presetNames().filter((p) => p.startsWith('ablation-'))).toEqual(
      ABLATION_GRID.map((c) => `ablation-${c.key}`),
    );
    expect(ablationVariants().map((v) => v.name)).toEqual([
      'fpn',
      'fpn + IoU branch',
      'pan-attn',
      'pan-attn + IoU branch',
      'assigner maxiou',
      'assigner atss',
      'assigner paa',
      'assigner ota',
      'thesis: pan-attn + IoU branch on the baseline anchors (N3-N7)',
      'thesis: IoU BCE over all anchors',
      'thesis: PAA split by the mixture means',
      'thesis: OTA without row normalisation',
      'thesis: no warm-up, clipping or augmentation',
    ]);
    for (const cell of ABLATION_GRID) {
      const c = loadConfig({ preset: `ablation-${cell.key}` });
      expect([c.model.neck.type, c.model.head.iouBranch]).toEqual([cell.neck, cell.iouBranch]);
    }
  });
});
