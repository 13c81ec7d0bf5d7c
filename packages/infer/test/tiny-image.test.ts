import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectorMetadata, exportDetectorOnnx } from '@bmc/export';
import { buildDetector, detectorConfig } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Detector, loadDetector } from '../src/model.js';

// Issue 22: a 1x1 image gave 59 detections, 54 of them zero-area (clipped to the one pixel).
describe('detections on tiny images have positive area inside the image', () => {
  let dir: string;
  let detector: Detector;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    // Prior 0.3 so an untrained head scores many anchors above the threshold.
    const det = buildDetector(detectorConfig('tiny', { head: { priorProbability: 0.3 } }));
    const { bytes } = exportDetectorOnnx(det.model, detectorMetadata(det.config, { classNames: ['cell'] }));
    det.model.dispose();
    dir = await mkdtemp(join(tmpdir(), 'bmc-infer-tiny-'));
    await writeFile(join(dir, 'tiny.onnx'), bytes);
    detector = await loadDetector(join(dir, 'tiny.onnx'), { threads: 1 });
  });
  afterAll(async () => {
    await detector?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  for (const [w, h] of [
    [1, 1],
    [3, 1],
    [2, 5],
  ] as const) {
    it(`${w}x${h}`, async () => {
      const data = new Uint8Array(w * h * 3).fill(128);
      const r = await detector.detect({ data, width: w, height: h, channels: 3 });
      console.log(`${w}x${h}: ${r.detections.length} detections`);
      for (const d of r.detections) {
        const [x1, y1, x2, y2] = d.box;
        expect(x2 - x1, JSON.stringify(d.box)).toBeGreaterThan(0);
        expect(y2 - y1, JSON.stringify(d.box)).toBeGreaterThan(0);
        expect(x1).toBeGreaterThanOrEqual(0);
        expect(y1).toBeGreaterThanOrEqual(0);
        expect(x2).toBeLessThanOrEqual(w);
        expect(y2).toBeLessThanOrEqual(h);
      }
    });
  }
});
