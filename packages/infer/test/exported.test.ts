import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectorMetadata, exportDetectorOnnx } from '@bmc/export';
import { buildDetector, detectorConfig } from '@bmc/heads-iou';
import { postprocessDetections } from '@bmc/heads-iou/postprocess';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeToPixels } from '../src/image.js';
import { type Detector, loadDetector } from '../src/model.js';
import { prepareInput } from '../src/pipeline/preprocess.js';
import { smearPng } from './helpers.js';

// A real export: heads-iou's 'tiny' preset (ResNet18/4 + PAN-attn N3-N5 + IoU head) written by
// @bmc/export, run through this app's pipeline, against the tfjs model itself + heads-iou's
// post-processing: an implementation path that shares nothing with onnxruntime.
describe('a detector exported by @bmc/export', () => {
  let dir: string;
  let detector: Detector;
  let det: ReturnType<typeof buildDetector>;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    // Prior 0.3 instead of 0.01 so that untrained scores spread over a range and detections exist.
    det = buildDetector(detectorConfig('tiny', { head: { priorProbability: 0.3 } }));
    const { bytes } = exportDetectorOnnx(
      det.model,
      detectorMetadata(det.config, { classNames: ['cell'], model: { name: 'tiny-export-test' } }),
    );
    dir = await mkdtemp(join(tmpdir(), 'bmc-infer-export-'));
    await writeFile(join(dir, 'tiny.onnx'), bytes);
    detector = await loadDetector(join(dir, 'tiny.onnx'), { threads: 1 });
  });
  afterAll(async () => {
    det?.model.dispose();
    await detector?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('loads with its metadata and gives the tfjs model + heads-iou detections (same count, boxes within 1e-3)', async () => {
    expect(detector.meta.classNames).toEqual(['cell']);
    expect(detector.meta.scoreMode).toBe('sqrt(cls*iou)');
    const image = await decodeToPixels((await smearPng(9, 256, 192)).png);
    const ours = await detector.detect(image);

    // Reference: the same normalised input (NCHW -> NHWC) through tfjs, then heads-iou.
    const input = prepareInput(image, detector.meta.input.normalization, detector.meta.input.sizeMultiple);
    const { width: W, height: H } = input;
    const nhwc = new Float32Array(H * W * 3);
    for (let c = 0; c < 3; c++)
      for (let i = 0; i < H * W; i++) nhwc[i * 3 + c] = input.tensor[c * H * W + i]!;
    const before = tf.memory().numTensors;
    const outs = tf.tidy(() => det.model.predict(tf.tensor4d(nhwc, [1, H, W, 3])) as tf.Tensor[]);
    const [cls, box, iou] = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose(outs);
    expect(tf.memory().numTensors).toBe(before);
    const pp = det.config.postprocess;
    const ref = postprocessDetections(
      { clsLogits: cls!, boxDeltas: box!, iouLogits: iou! },
      det.anchorsFor(H, W),
      1,
      {
        ...pp,
        imageSize: [input.contentHeight, input.contentWidth],
      },
    );

    expect(ours.detections.length).toBeGreaterThan(0);
    expect(ours.detections.length).toBe(ref.scores.length);
    // Detections whose scores tie to float precision may come in either order (random init: it
    // happens), so each box is compared with the closest reference box of (nearly) the same score.
    let maxDiff = 0;
    ours.detections.forEach((d, i) => {
      expect(d.score).toBeCloseTo(ref.scores[i]!, 4);
      let best = Number.POSITIVE_INFINITY;
      ref.scores.forEach((s, j) => {
        if (Math.abs(s - d.score) > 1e-4) return;
        let dist = 0;
        for (let k = 0; k < 4; k++) dist = Math.max(dist, Math.abs(d.box[k]! - ref.boxes[j * 4 + k]!));
        best = Math.min(best, dist);
      });
      maxDiff = Math.max(maxDiff, best);
    });
    expect(maxDiff).toBeLessThan(1e-3);
    console.log(
      `exported tiny preset: ${ours.detections.length} detections, max box diff vs tfjs + heads-iou ${maxDiff.toExponential(2)} px`,
    );
  });
});
