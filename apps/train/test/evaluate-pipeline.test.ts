import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toBytes } from '@bmc/data';
import { exportDetectorOnnx } from '@bmc/export';
import { buildDetector } from '@bmc/heads-iou';
import { loadDetector } from '@bmc/infer';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { loadSplits } from '../src/train/data.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { predictSplit } from '../src/train/evaluate.js';
import { inProcessMetadata, runMetadata } from '../src/train/model-metadata.js';
import { loadRunConfig } from '../src/train/pixel-scale.js';
import { setUpEngine } from '../src/train/trainer.js';
import { smallSet } from './small-config.js';

// 320 x 256 synthetic fields with a 128 px imageSize: 'auto' sampling picks crops, evaluation tiles.
const config = loadConfig({
  preset: 'tiny',
  set: [...smallSet(128, 4, 2), 'data.synthetic.width=320', 'data.synthetic.height=256'],
});

describe("the trainer's evaluation is @bmc/infer's pipeline with a tfjs network", () => {
  beforeAll(async () => {
    await setUpEngine(config.run, () => {});
  });

  it('resolves crops for fields larger than imageSize and scores full images in source pixels, no tensor left behind', async () => {
    const splits = await loadSplits(config);
    expect(splits.test.scale.scale).toEqual({ mode: 'native', crop: 128 });
    expect(splits.train.scale.description).toMatch(/median longer side is 320 px, above data.imageSize 128/);
    const detector = buildDetector(toDetectorConfig(config, 1));
    const meta = inProcessMetadata(
      runMetadata(config, detector.config, splits.test.classes, splits.test.scale.scale),
    );
    await predictSplit(detector.model, splits.test, meta); // warm-up: kernels, weights
    const before = tf.memory().numTensors;
    const p = await predictSplit(detector.model, splits.test, meta);
    expect(tf.memory().numTensors).toBe(before);
    // Ground truth at the source resolution, exactly the generator's boxes.
    expect(p.gt.images).toEqual([
      { id: 1, width: 320, height: 256 },
      { id: 2, width: 320, height: 256 },
    ]);
    const s0 = await splits.test.source.load(0, 320, 256);
    const gt0 = p.gt.annotations.filter((a) => a.image_id === 1).map((a) => a.bbox);
    expect(gt0).toEqual(
      Array.from({ length: s0.boxes.length / 4 }, (_, k) => {
        const [x1, y1, x2, y2] = Array.from(s0.boxes.subarray(4 * k, 4 * k + 4));
        return [x1, y1, x2! - x1!, y2! - y1!];
      }),
    );
    detector.dispose();
  }, 300_000);

  it('gives the detections onnxruntime gives on the exported model (same pipeline, another runtime)', async () => {
    const splits = await loadSplits(config);
    const detector = buildDetector(toDetectorConfig(config, 1));
    const input = runMetadata(config, detector.config, splits.test.classes, splits.test.scale.scale);
    const file = join(mkdtempSync(join(tmpdir(), 'bmc-eval-ort-')), 'model.onnx');
    writeFileSync(file, exportDetectorOnnx(detector.model, input).bytes);
    const ort = await loadDetector(file, { threads: 1 });
    expect(ort.meta.pixelScale).toEqual({ mode: 'native', crop: 128 });
    const p = await predictSplit(detector.model, splits.test, inProcessMetadata(input));
    for (let i = 0; i < splits.test.source.length; i++) {
      const s = await splits.test.source.load(i, 320, 256);
      const r = await ort.detect({ data: toBytes(s.image), width: 320, height: 256, channels: 3 });
      expect(r.tiles).toBe(9); // 3 x 3 tiles of 128 px (overlap 32, steps of 96)
      const ours = p.perImage.get(i)!;
      expect(ours.scores.length).toBeGreaterThan(10);
      // Every onnxruntime detection has a tfjs twin: same box to 0.05 px, same score to 1e-3.
      const matched = r.detections.filter((d) =>
        Array.from(ours.scores).some(
          (sc, k) =>
            Math.abs(sc - d.score) < 1e-3 &&
            d.box.every((v, c) => Math.abs(v - ours.boxes[4 * k + c]!) < 0.05),
        ),
      );
      expect(matched.length / r.detections.length).toBeGreaterThanOrEqual(0.98);
      expect(Math.abs(r.detections.length - ours.scores.length)).toBeLessThanOrEqual(
        Math.ceil(0.02 * r.detections.length),
      );
    }
    await ort.dispose();
    detector.dispose();
  }, 300_000);

  it('a run folder from before data.sampling (no such key in config.yaml) keeps letterbox; newer ones keep theirs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bmc-old-run-'));
    const old = join(dir, 'old.yaml');
    writeFileSync(old, 'name: old\ndata:\n  format: synthetic\n  imageSize: 320\n');
    expect(loadRunConfig(old).data.sampling).toBe('letterbox');
    const recent = join(dir, 'recent.yaml');
    writeFileSync(recent, 'name: recent\ndata:\n  format: synthetic\n  imageSize: 320\n  sampling: auto\n');
    expect(loadRunConfig(recent).data.sampling).toBe('auto');
  });
});
