import * as backbone from '@bmc/backbone';
import { boxIou } from '@bmc/core';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  anchorConfigForLevels,
  buildDetector,
  detectionLoss,
  detectorConfig,
  type ImageTargets,
  postprocessBatch,
} from '../src/index.js';
import { readJson, useCpu } from './helpers.js';

const fx = readJson<{ param_counts: Record<string, number> }>('heads_parity.json');
beforeAll(useCpu);

/** Simple max-IoU assignment (0.5 / 0.4) written here, so the test does not depend on @bmc/assigners. */
function assign(anchors: Float32Array, gtBoxes: number[], gtLabels: number[]): ImageTargets {
  const iou = boxIou(anchors, gtBoxes);
  const matchedIdxs = new Int32Array(iou.rows);
  for (let i = 0; i < iou.rows; i++) {
    let best = -1;
    let bestIou = 0;
    for (let g = 0; g < iou.cols; g++) {
      if (iou.data[i * iou.cols + g]! > bestIou) {
        bestIou = iou.data[i * iou.cols + g]!;
        best = g;
      }
    }
    matchedIdxs[i] = bestIou >= 0.5 ? best : bestIou >= 0.4 ? -2 : -1;
  }
  return { matchedIdxs, gtBoxes, gtLabels };
}

describe('buildDetector: parameter counts against torchvision', () => {
  it('baseline (R50-FPN P3-P7, 1 class, frozen BN) equals retinanet_resnet50_fpn as built with pretrained weights', () => {
    const { model, outputNames } = buildDetector('baseline');
    expect(outputNames).toEqual(['cls_logits', 'box_deltas']);
    expect(backbone.countParameters(model).parameters).toBe(
      fx.param_counts.retinanet_resnet50_fpn_frozenbn_1,
    );
    model.dispose();
  });

  it('baseline with trainable BatchNorm equals retinanet_resnet50_fpn(weights=None, num_classes=1)', () => {
    const { model } = buildDetector(detectorConfig('baseline', { backbone: { frozenBatchNorm: false } }));
    expect(backbone.countParameters(model).parameters).toBe(fx.param_counts.retinanet_resnet50_fpn_bn_1);
    model.dispose();
  });
});

describe('buildDetector: composition', () => {
  it('thesis preset (narrowed): N2-N5 PAN-attn with the IoU branch, outputs in anchor order', () => {
    const cfg = detectorConfig('thesis', { backbone: { widthMultiplier: 1 / 16 }, neck: { channels: 16 } });
    expect(cfg.neck).toMatchObject({ kind: 'pan-attn', levels: [2, 3, 4, 5] });
    expect(cfg.anchors.levels.map((l) => l.sizes[0])).toEqual([16, 32, 64, 128]);
    const det = buildDetector(cfg);
    expect(det.outputNames).toEqual(['cls_logits', 'box_deltas', 'iou_logits']);
    expect(det.model.outputNames).toEqual(['cls_logits', 'box_deltas', 'iou_logits']);
    const x = tf.zeros([1, 64, 64, 3]);
    const outs = det.model.predict(x) as tf.Tensor[];
    const a = det.anchorsFor(64, 64).boxes.length / 4;
    expect(outs.map((o) => o.shape)).toEqual([
      [1, a, 1],
      [1, a, 4],
      [1, a, 1],
    ]);
    tf.dispose([x, ...outs]);
    det.model.dispose();
  });

  it('tiny preset survives a save / load round trip (topology + weights) with identical outputs', async () => {
    const det = buildDetector(
      detectorConfig('tiny', { backbone: { widthMultiplier: 1 / 16 }, neck: { channels: 8 } }),
    );
    let artifacts: tf.io.ModelArtifacts | undefined;
    await det.model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const copy = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
    const x = tf.randomNormal([1, 64, 64, 3]);
    const a = det.model.predict(x) as tf.Tensor[];
    const b = copy.predict(x) as tf.Tensor[];
    expect(copy.outputNames).toEqual(det.model.outputNames);
    a.forEach((t, i) => {
      expect(Array.from(b[i]!.dataSync())).toEqual(Array.from(t.dataSync()));
    });
    tf.dispose([x, ...a, ...b]);
    copy.dispose();
    det.model.dispose();
  });

  it('checks input sizes with a clear message', () => {
    const dynamic = buildDetector(
      detectorConfig('tiny', { backbone: { widthMultiplier: 1 / 16 }, neck: { channels: 8 } }),
    );
    expect(() => dynamic.anchorsFor(48, 64)).toThrow(/multiples of 32/);
    expect(dynamic.anchorsFor(64, 96).boxes.length).toBeGreaterThan(0);
    const fixed = buildDetector(
      detectorConfig('tiny', {
        inputSize: [45, 61],
        backbone: { widthMultiplier: 1 / 16 },
        neck: { channels: 8 },
      }),
    );
    expect(() => fixed.anchorsFor(64, 64)).toThrow(/built for 45x61 inputs, got 64x64/);
    expect(fixed.anchorsFor(45, 61).levelCounts.length).toBe(3);
    dynamic.model.dispose();
    fixed.model.dispose();
  });

  it('rejects anchors that do not match the neck levels', () => {
    expect(() =>
      buildDetector(detectorConfig('tiny', { anchors: anchorConfigForLevels([2, 3, 4]) })),
    ).toThrow(/anchor strides \[4,8,16\] do not match the neck's \[8,16,32\]/);
    expect(() => detectorConfig('huge' as 'tiny')).toThrow(/unknown preset 'huge'/);
  });
});

describe('tiny detector: training step end to end', () => {
  it('gradients reach every trainable weight, frozen weights stay, no leaks in forward, loss, step and post-processing', () => {
    const cfg = detectorConfig('tiny', {
      // 40 is not a multiple of 32: a fixed input size makes the neck crop as torch's interpolate does.
      // Narrow widths: the cpu backend's filter gradient is slow.
      inputSize: [40, 48],
      backbone: { widthMultiplier: 1 / 16, frozenStages: 1, frozenBatchNorm: true },
      neck: { channels: 8, attentionReduction: 1 },
      head: { numClasses: 2 },
    });
    const det = buildDetector(cfg);
    const { model } = det;
    // A positive fc1 bias keeps the attention MLP's ReLUs alive whatever the random init.
    for (const layer of model.layers) {
      if (/\.fc1\.\d+$/.test(layer.name)) {
        const [k, b] = layer.getWeights();
        layer.setWeights([k!, tf.onesLike(b!)]);
      }
    }
    const anchors = det.anchorsFor(40, 48);
    const targets = [
      assign(anchors.boxes, [4, 4, 36, 30, 20, 10, 46, 38], [0, 1]),
      assign(anchors.boxes, [5, 5, 37, 38], [1]),
    ];
    expect(targets.every((t) => Array.from(t.matchedIdxs).some((m) => m >= 0))).toBe(true);
    const x = tf.randomUniform([2, 40, 48, 3], -1, 1, 'float32', 3);
    const lossFn = () => {
      const [clsLogits, boxDeltas, iouLogits] = model.apply(x, { training: true }) as tf.Tensor[];
      return detectionLoss(
        { clsLogits: clsLogits!, boxDeltas: boxDeltas!, iouLogits: iouLogits! },
        anchors.boxes,
        targets,
        cfg.loss,
      ).total;
    };
    const trainable = model.trainableWeights;
    const { value, grads } = tf.variableGrads(
      lossFn,
      trainable.map((w) => w.read() as tf.Variable),
    );
    for (const w of trainable) {
      expect(
        tf.max(tf.abs(grads[(w.read() as tf.Variable).name]!)).dataSync()[0],
        w.originalName,
      ).toBeGreaterThan(0);
    }
    tf.dispose([value, ...Object.values(grads)]);

    const frozen = model.weights.filter((w) => !w.trainable);
    expect(frozen.some((w) => w.originalName.startsWith('backbone.body.layer1.'))).toBe(true);
    const before = frozen.map((w) => w.read().dataSync().slice());
    const opt = tf.train.momentum(0.01, 0.9);
    const vars = trainable.map((w) => w.read() as tf.Variable);
    const step = () => opt.minimize(lossFn, true, vars)?.dispose();
    const predict = () => {
      const outs = model.predict(x) as tf.Tensor[];
      const [cls, box, iou] = outs.map((o) => o.dataSync() as Float32Array);
      tf.dispose(outs);
      return postprocessBatch({ clsLogits: cls!, boxDeltas: box!, iouLogits: iou! }, 2, anchors, 2, {
        ...cfg.postprocess,
        imageSize: [40, 48],
      });
    };
    step();
    predict();
    const n = tf.memory().numTensors;
    step();
    const dets = predict();
    expect(tf.memory().numTensors).toBe(n);
    expect(dets.length).toBe(2);
    frozen.forEach((w, i) => {
      expect(Array.from(w.read().dataSync()), w.originalName).toEqual(Array.from(before[i]!));
    });
    opt.dispose();
    x.dispose();
    model.dispose();
  });
});

describe('Detector.dispose', () => {
  it('frees every weight, including the shared head layers that model.dispose() keeps', () => {
    const before = tf.memory().numTensors;
    const d = buildDetector(detectorConfig('tiny'));
    const x = tf.zeros([1, 64, 64, 3]);
    tf.dispose(d.model.predict(x) as tf.Tensor[]);
    x.dispose();
    d.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
