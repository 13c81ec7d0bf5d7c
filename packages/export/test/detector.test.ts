// The real detector (buildDetector from @bmc/heads-iou: ResNet + FPN/PAN-attn + RetinaNet/IoU
// head) exported to ONNX and run in onnxruntime-node against tfjs (cpu backend), at two input
// sizes, for the three presets at tiny widths.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAnchors } from '@bmc/core';
import { buildDetector, type DetectorPreset, detectorConfig } from '@bmc/heads-iou';
import { postprocessDetections } from '@bmc/heads-iou/postprocess';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  detectorMetadata,
  exportDetectorOnnx,
  loadCheckpoint,
  readBmcMetadata,
  saveCheckpoint,
} from '../src/index.js';
import { checker, compareWithOrt, hasOnnxPython, initTf, randomizeWeights, randomValues } from './helpers.js';

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

describe('the exported file is all an inference app needs', () => {
  beforeAll(initTf);

  it('metadata-driven ORT inference + postprocess gives the detections of the tfjs path', async () => {
    const det = buildDetector(detectorConfig('thesis', { ...small, head: { ...small.head, numClasses: 2 } }));
    randomizeWeights(det.model, 31337);
    const { bytes } = exportDetectorOnnx(
      det.model,
      detectorMetadata(det.config, { classNames: ['blast', 'other'] }),
    );
    const [h, w] = [64, 96];
    const x = randomValues(h * w * 3, 77);

    // Training side: tfjs outputs, the detector's own anchors and postprocess settings.
    const ys = tf.tidy(() => det.model.predict(tf.tensor(x, [1, h, w, 3])) as tf.Tensor[]);
    const [cls, box, iou] = await Promise.all(ys.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose(ys);
    const expected = postprocessDetections(
      { clsLogits: cls!, boxDeltas: box!, iouLogits: iou! },
      det.anchorsFor(h, w),
      2,
      { ...det.config.postprocess, imageSize: [h, w] },
    );

    // App side: nothing but the bytes.
    const meta = readBmcMetadata(bytes);
    const session = await ort.InferenceSession.create(bytes);
    const chw = new Float32Array(x.length);
    for (let i = 0; i < h * w; i++) for (let c = 0; c < 3; c++) chw[c * h * w + i] = x[i * 3 + c]!;
    const out = await session.run({ [meta.input.name]: new ort.Tensor('float32', chw, [1, 3, h, w]) });
    await session.release();
    const got = postprocessDetections(
      {
        clsLogits: out[meta.outputs.clsLogits]!.data as Float32Array,
        boxDeltas: out[meta.outputs.boxDeltas]!.data as Float32Array,
        iouLogits: out[meta.outputs.iouLogits!]!.data as Float32Array,
      },
      generateAnchors(meta.anchors, h, w),
      meta.classNames.length,
      {
        scoreMode: meta.scoreMode,
        scoreThreshold: meta.nms.scoreThreshold,
        topK: meta.nms.topK,
        nmsThreshold: meta.nms.nmsThreshold,
        maxDetections: meta.nms.maxDetections,
        boxCoderWeights: meta.boxCoder.weights as [number, number, number, number],
        imageSize: [h, w],
      },
    );
    expect(expected.scores.length).toBeGreaterThan(10);
    expect(got.scores.length).toBe(expected.scores.length);
    expect(Array.from(got.labels)).toEqual(Array.from(expected.labels));
    for (let i = 0; i < got.boxes.length; i++)
      expect(Math.abs(got.boxes[i]! - expected.boxes[i]!)).toBeLessThan(1e-3);
    for (let i = 0; i < got.scores.length; i++)
      expect(Math.abs(got.scores[i]! - expected.scores[i]!)).toBeLessThan(1e-5);
    det.model.dispose();
  });
});

describe('withPostprocess: decoding and NMS inside the graph', () => {
  beforeAll(initTf);

  // Default thresholds hit the maxDetections cap; 0.75 leaves fewer after NMS; 0.9999 leaves none.
  for (const [preset, classes, sizes, scoreThreshold, minCount] of [
    [
      'thesis',
      2,
      [
        [64, 96],
        [96, 64],
      ],
      0.05,
      100,
    ],
    ['thesis', 1, [[64, 64]], 0.75, 1],
    ['thesis', 1, [[64, 64]], 0.9999, 0],
    ['baseline', 3, [[64, 64]], 0.05, 100],
  ] as const) {
    it(`${preset} (tiny widths, ${classes} classes, score > ${scoreThreshold}) equals @bmc/heads-iou postprocessDetections on tfjs outputs`, async () => {
      const det = buildDetector(
        detectorConfig(preset, {
          ...small,
          head: { ...small.head, numClasses: classes },
          postprocess: { scoreThreshold },
        }),
      );
      randomizeWeights(det.model, 99);
      const { bytes } = exportDetectorOnnx(det.model, detectorMetadata(det.config), {
        withPostprocess: true,
      });
      const meta = readBmcMetadata(bytes);
      expect(meta.outputs.detections).toEqual({
        boxes: 'det_boxes',
        scores: 'det_scores',
        labels: 'det_labels',
      });
      // onnxruntime-web's wasm backend (what the browser viewer runs) alongside onnxruntime-node.
      ortWeb.env.wasm.numThreads = 1;
      const sessions = [
        { name: 'onnxruntime-node', s: await ort.InferenceSession.create(bytes), T: ort.Tensor },
        {
          name: 'onnxruntime-web (wasm)',
          s: await ortWeb.InferenceSession.create(bytes, { executionProviders: ['wasm'] }),
          T: ortWeb.Tensor,
        },
      ] as const;
      for (const [j, [h, w]] of sizes.entries()) {
        const x = randomValues(h * w * 3, 300 + j);
        const ys = tf.tidy(() => det.model.predict(tf.tensor(x, [1, h, w, 3])) as tf.Tensor[]);
        const data = await Promise.all(ys.map((t) => t.data() as Promise<Float32Array>));
        tf.dispose(ys);
        const expected = postprocessDetections(
          { clsLogits: data[0]!, boxDeltas: data[1]!, ...(data[2] ? { iouLogits: data[2] } : {}) },
          det.anchorsFor(h, w),
          classes,
          // The in-graph post-processing keeps torchvision's semantics, zero-area boxes included.
          { ...det.config.postprocess, imageSize: [h, w], keepEmptyBoxes: true },
        );
        expect(expected.scores.length).toBeGreaterThanOrEqual(minCount);
        if (minCount === 0) expect(expected.scores.length).toBe(0);
        else if (minCount < 100) expect(expected.scores.length).toBeLessThan(100);
        const chw = new Float32Array(x.length);
        for (let i = 0; i < h * w; i++) for (let c = 0; c < 3; c++) chw[c * h * w + i] = x[i * 3 + c]!;
        for (const { name, s: session, T } of sessions) {
          const out = await session.run({ images: new T('float32', chw, [1, 3, h, w]) });
          const boxes = out.det_boxes!.data as Float32Array;
          const scores = out.det_scores!.data as Float32Array;
          const labels = Array.from(out.det_labels!.data as BigInt64Array, Number);
          expect(scores.length, name).toBe(expected.scores.length);
          expect(labels, name).toEqual(Array.from(expected.labels));
          for (let i = 0; i < boxes.length; i++)
            expect(Math.abs(boxes[i]! - expected.boxes[i]!)).toBeLessThan(1e-3);
          for (let i = 0; i < scores.length; i++)
            expect(Math.abs(scores[i]! - expected.scores[i]!)).toBeLessThan(1e-5);
        }
        console.log(
          `withPostprocess ${preset} ${h}x${w}: ${expected.scores.length} detections; onnxruntime-node and -web equal the TypeScript postprocess`,
        );
      }
      for (const { s: session } of sessions) await session.release();
      det.model.dispose();
    });
  }
});

describe.skipIf(!hasOnnxPython)('onnx checker on detector files', () => {
  beforeAll(initTf);

  it('tiny preset, plain and withPostprocess, pass onnx.checker full_check', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bmc-export-detcheck-'));
    try {
      const det = buildDetector('tiny');
      const files = [false, true].map((withPostprocess) => {
        const f = join(dir, `tiny-${withPostprocess}.onnx`);
        writeFileSync(
          f,
          exportDetectorOnnx(det.model, detectorMetadata(det.config), { withPostprocess }).bytes,
        );
        return f;
      });
      const out = execFileSync('/usr/bin/python3', [checker, ...files], { encoding: 'utf8' });
      expect(out.match(/: OK \(onnx/g)?.length).toBe(2);
      expect(out).toContain("('det_labels', ['D'])");
      det.model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('withPostprocess, class-agnostic NMS', () => {
  beforeAll(initTf);

  it('keeps no pair above the IoU threshold across classes, unlike the class-aware file', async () => {
    const det = buildDetector(detectorConfig('thesis', { ...small, head: { ...small.head, numClasses: 3 } }));
    randomizeWeights(det.model, 5);
    const meta = detectorMetadata(det.config);
    const run = async (classAgnostic: boolean) => {
      const { bytes } = exportDetectorOnnx(
        det.model,
        { ...meta, nms: { ...meta.nms, classAgnostic } },
        { withPostprocess: true },
      );
      const s = await ort.InferenceSession.create(bytes);
      const x = randomValues(3 * 64 * 64, 8);
      const out = await s.run({ images: new ort.Tensor('float32', x, [1, 3, 64, 64]) });
      await s.release();
      return { boxes: out.det_boxes!.data as Float32Array, scores: out.det_scores!.data as Float32Array };
    };
    const maxCrossIou = (b: Float32Array) => {
      let worst = 0;
      for (let i = 0; i < b.length / 4; i++)
        for (let j = i + 1; j < b.length / 4; j++) {
          const iw = Math.max(0, Math.min(b[4 * i + 2]!, b[4 * j + 2]!) - Math.max(b[4 * i]!, b[4 * j]!));
          const ih = Math.max(
            0,
            Math.min(b[4 * i + 3]!, b[4 * j + 3]!) - Math.max(b[4 * i + 1]!, b[4 * j + 1]!),
          );
          const area = (k: number) => (b[4 * k + 2]! - b[4 * k]!) * (b[4 * k + 3]! - b[4 * k + 1]!);
          const union = area(i) + area(j) - iw * ih;
          // Boxes clipped to the image can have zero area: IoU 0, as in torchvision's box_iou with no overlap.
          if (union > 0) worst = Math.max(worst, (iw * ih) / union);
        }
      return worst;
    };
    const agnostic = await run(true);
    const aware = await run(false);
    expect(agnostic.scores.length).toBeGreaterThan(0);
    expect(maxCrossIou(agnostic.boxes)).toBeLessThanOrEqual(meta.nms.nmsThreshold);
    expect(maxCrossIou(aware.boxes)).toBeGreaterThan(meta.nms.nmsThreshold);
    expect(agnostic.scores[0]).toBe(aware.scores[0]);
    for (let i = 1; i < agnostic.scores.length; i++)
      expect(agnostic.scores[i]!).toBeLessThanOrEqual(agnostic.scores[i - 1]!);
    det.model.dispose();
  });
});
