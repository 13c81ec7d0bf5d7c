// The real detector (buildDetector from @bmc/heads-iou: ResNet + FPN/PAN-attn + RetinaNet/IoU
// head) exported to ONNX and run in onnxruntime-node against tfjs (cpu backend), at two input
// sizes, for the three presets at tiny widths.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDetector, type DetectorPreset, detectorConfig } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  detectorMetadata,
  exportDetectorOnnx,
  loadCheckpoint,
  readBmcMetadata,
  saveCheckpoint,
} from '../src/index.js';
import { compareWithOrt, initTf, randomizeWeights, randomValues } from './helpers.js';

// Tiny widths keep the plain-JS cpu backend fast; the structure (levels, FrozenBatchNorm,
// attention, shared head, IoU branch) is the preset's.
const small = { backbone: { widthMultiplier: 0.125 }, neck: { channels: 16 }, head: { numConvs: 1 } };
const presets: Array<[DetectorPreset, Parameters<typeof detectorConfig>[1]]> = [
  ['tiny', {}],
  ['thesis', { ...small, head: { ...small.head, numClasses: 3 } }],
  ['baseline', small],
];
const SIZES = [
  { n: 2, h: 64, w: 64 },
  { n: 1, h: 96, w: 128 },
];

describe('detector export parity (onnxruntime-node vs tfjs)', () => {
  beforeAll(initTf);

  for (const [k, [preset, overrides]] of presets.entries()) {
    it(`${preset} preset${Object.keys(overrides ?? {}).length ? ' (tiny widths)' : ''}`, async () => {
      const det = buildDetector(detectorConfig(preset, overrides));
      randomizeWeights(det.model, 1000 * (k + 1));
      const meta = detectorMetadata(det.config, { model: { preset } });
      const before = tf.memory().numTensors;
      const { bytes, summary } = exportDetectorOnnx(det.model, meta);
      expect(tf.memory().numTensors).toBe(before);
      // Every BatchNorm of the backbone follows a conv that feeds only it.
      const bns = det.model.layers.filter((l) => /BatchNorm/.test(l.getClassName())).length;
      expect(summary.foldedBatchNorms).toBe(bns);
      expect(summary.opCounts.BatchNormalization).toBeUndefined();

      const read = readBmcMetadata(bytes);
      expect(read.anchors).toEqual(det.config.anchors);
      expect(read.outputs.iouLogits !== undefined).toBe(det.config.head.iouBranch);
      expect(read.input.sizeMultiple).toBe(Math.max(...det.strides));

      for (const [j, size] of SIZES.entries()) {
        const parity = await compareWithOrt(det.model, bytes, size, 50 + j, {
          input: 'images',
          outputs: det.outputNames,
        });
        const anchors = det.anchorsFor(size.h, size.w).boxes.length / 4;
        for (const p of parity) {
          expect(p.shape[1], `${p.name}: one row per anchor`).toBe(anchors);
          expect(p.range).toBeGreaterThan(0);
          expect(
            p.relative,
            `${preset} ${p.name} ${size.h}x${size.w}: max diff ${p.maxAbsDiff}`,
          ).toBeLessThan(1e-4);
        }
        console.log(
          `${preset} ${size.n}x3x${size.h}x${size.w}: ` +
            parity
              .map(
                (p) => `${p.name} max|diff| ${p.maxAbsDiff.toExponential(2)} (range ${p.range.toFixed(3)})`,
              )
              .join(', '),
        );
      }
      det.model.dispose();
    });
  }
});

describe('detector checkpoint -> ONNX', () => {
  beforeAll(initTf);

  it('a checkpoint of the thesis structure (FrozenBatchNorm, attention) reloads exactly and exports with parity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bmc-export-det-'));
    try {
      const det = buildDetector(detectorConfig('thesis', small));
      randomizeWeights(det.model, 4242);
      await saveCheckpoint(join(dir, 'ckpt'), {
        model: det.model,
        state: { step: 10, epoch: 1, config: det.config },
      });
      const loaded = await loadCheckpoint(join(dir, 'ckpt'));
      expect(loaded.state!.config).toEqual(JSON.parse(JSON.stringify(det.config)));
      const x = randomValues(64 * 64 * 3, 5);
      const run = (m: tf.LayersModel) =>
        tf.tidy(() =>
          (m.predict(tf.tensor(x, [1, 64, 64, 3])) as tf.Tensor[]).map((t) => Array.from(t.dataSync())),
        );
      expect(run(loaded.model)).toEqual(run(det.model));
      const { bytes } = exportDetectorOnnx(loaded.model, detectorMetadata(det.config));
      const parity = await compareWithOrt(loaded.model, bytes, { n: 1, h: 64, w: 96 }, 9, {
        input: 'images',
        outputs: det.outputNames,
      });
      for (const p of parity) expect(p.relative).toBeLessThan(1e-4);
      loaded.model.dispose();
      det.model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
