import { importTorchWeights, parseSafetensors, safetensorsSource } from '@bmc/backbone';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  detectionLoss,
  type ImageTargets,
  type LossOptions,
  postprocessDetections,
  retinanetHead,
  type ScoreMode,
  sigmoidFocalLoss,
} from '../src/index.js';
import {
  type ArrayFixture,
  fixtureImageOutputs,
  readBytes,
  readJson,
  relativeMaxDiff,
  useCpu,
} from './helpers.js';

interface HeadsFixture {
  numClasses: number;
  features: ArrayFixture[];
  cls_logits: ArrayFixture;
  bbox_regression: ArrayFixture;
  iou_logits: ArrayFixture;
  postprocess: {
    imageSize: [number, number];
    anchors: number[];
    levelCounts: number[];
    cls_logits: number[];
    box_deltas: number[];
    iou_logits: number[];
    cases: Array<{
      mode: ScoreMode;
      topk: number;
      scoreThreshold: number;
      detections: Array<{ boxes: number[]; scores: number[]; labels: number[] }>;
    }>;
  };
  focal: {
    logits: number[];
    targets: number[];
    loss_none: number[];
    loss_sum: number;
    loss_none_a05_g1: number[];
  };
  loss: {
    anchors: number[];
    numClasses: number;
    cls_logits: number[];
    box_deltas: number[];
    iou_logits: number[];
    images: ImageTargets[];
    cls: number;
    box_l1: number;
    box_smooth_l1: number;
    box_giou: number;
    box_smooth_l1_beta_1_9: number;
    iou_bce: number;
  };
}

const fx = readJson<HeadsFixture>('heads_parity.json');
const models: tf.LayersModel[] = [];
beforeAll(useCpu);
afterEach(() => {
  while (models.length) models.pop()!.dispose();
});

describe('RetinaNet head vs torchvision', () => {
  it('cls_logits, bbox_regression (and the IoU branch) match within 1e-4, in anchor order', () => {
    const inputs = fx.features.map((f) => tf.input({ shape: f.shape.slice(1) }));
    const head = retinanetHead(inputs, { numClasses: fx.numClasses, iouBranch: true });
    const model = tf.model({ inputs, outputs: [head.clsLogits, head.boxDeltas, head.iouLogits!] });
    models.push(model);
    expect(model.outputs.map((o) => o.name.split('/')[0])).toEqual([
      'cls_logits',
      'box_deltas',
      'iou_logits',
    ]);
    const report = importTorchWeights(
      model,
      safetensorsSource(parseSafetensors(readBytes('head_weights.safetensors'))),
      { layerPrefix: 'head.', sourcePrefix: 'head.' },
    );
    expect(report.unexpected).toEqual([]);
    const xs = fx.features.map((f) => tf.tensor(f.data, f.shape));
    const [cls, box, iou] = model.predict(xs) as tf.Tensor[];
    expect(cls!.shape).toEqual(fx.cls_logits.shape);
    expect(relativeMaxDiff(cls!.dataSync(), fx.cls_logits.data)).toBeLessThan(1e-4);
    expect(box!.shape).toEqual(fx.bbox_regression.shape);
    expect(relativeMaxDiff(box!.dataSync(), fx.bbox_regression.data)).toBeLessThan(1e-4);
    expect(iou!.shape).toEqual(fx.iou_logits.shape);
    expect(relativeMaxDiff(iou!.dataSync(), fx.iou_logits.data)).toBeLessThan(1e-4);
    tf.dispose([...xs, cls!, box!, iou!]);
  });

  it('initialises the classifier bias to the 0.01 prior and leaves the IoU branch out when asked', () => {
    const inputs = [tf.input({ shape: [4, 4, 8] })];
    const head = retinanetHead(inputs, { numClasses: 2, iouBranch: false, numConvs: 1 });
    expect(head.iouLogits).toBeUndefined();
    const model = tf.model({ inputs, outputs: [head.clsLogits, head.boxDeltas] });
    models.push(model);
    const bias = model.getLayer('head.classification_head.cls_logits').getWeights()[1]!.dataSync();
    expect(bias[0]).toBeCloseTo(-Math.log(0.99 / 0.01), 5);
    expect(model.outputs.map((o) => o.shape)).toEqual([
      [null, 4 * 4 * 9, 2],
      [null, 4 * 4 * 9, 4],
    ]);
  });
});

describe('post-processing', () => {
  const pp = fx.postprocess;
  const a = pp.anchors.length / 4;
  for (const c of pp.cases) {
    it(`${c.mode}, top-k ${c.topk}, threshold ${c.scoreThreshold}: equals torchvision's postprocess_detections`, () => {
      c.detections.forEach((expected, img) => {
        const got = postprocessDetections(
          fixtureImageOutputs(fx, img),
          { boxes: pp.anchors, levelCounts: pp.levelCounts },
          fx.numClasses,
          {
            scoreMode: c.mode,
            topK: c.topk,
            scoreThreshold: c.scoreThreshold,
            imageSize: pp.imageSize,
            // torchvision keeps boxes clipped to zero area; parity needs them (see positive-area.test.ts).
            keepEmptyBoxes: true,
          },
        );
        expect(got.scores.length).toBe(expected.scores.length);
        expect([...got.labels]).toEqual(expected.labels);
        expect(relativeMaxDiff(got.scores, expected.scores)).toBeLessThan(1e-4);
        expect(relativeMaxDiff(got.boxes, expected.boxes)).toBeLessThan(1e-4);
      });
    });
  }

  it('with a certain IoU (logit 50) the IoU-aware modes rank exactly like the plain score', () => {
    const certain = new Float32Array(a).fill(50);
    const run = (mode: ScoreMode, threshold: number) =>
      postprocessDetections(
        {
          clsLogits: pp.cls_logits.slice(0, a * fx.numClasses),
          boxDeltas: pp.box_deltas.slice(0, a * 4),
          iouLogits: certain,
        },
        { boxes: pp.anchors, levelCounts: pp.levelCounts },
        fx.numClasses,
        { scoreMode: mode, scoreThreshold: threshold },
      );
    const plain = run('cls', 0.3);
    const product = run('cls*iou', 0.3);
    const geometric = run('sqrt(cls*iou)', Math.sqrt(0.3));
    expect([...product.labels]).toEqual([...plain.labels]);
    expect(relativeMaxDiff(product.boxes, plain.boxes)).toBe(0);
    expect([...geometric.labels]).toEqual([...plain.labels]);
    expect(relativeMaxDiff(geometric.scores, Array.from(plain.scores, Math.sqrt))).toBeLessThan(1e-6);
  });

  it('top-k keeps the first anchors in index order among tied scores (selection path)', () => {
    // 50 disjoint 10x10 anchors in a row, equal logits except anchor 7 (higher) and 3 (lower).
    const n = 50;
    const boxes = Float32Array.from(
      { length: n * 4 },
      (_, i) => [20 * Math.floor(i / 4), 0, 20 * Math.floor(i / 4) + 10, 10][i % 4]!,
    );
    const logits = new Float32Array(n).fill(1);
    logits[7] = 2;
    logits[3] = 0.5;
    const got = postprocessDetections(
      { clsLogits: logits, boxDeltas: new Float32Array(n * 4) },
      { boxes, levelCounts: [n] },
      1,
      {
        topK: 5,
      },
    );
    // Anchor 7 first, then the tied anchors 0, 1, 2, 4 (3 scores lower); boxes reveal which anchor.
    expect(Array.from({ length: 5 }, (_, i) => got.boxes[4 * i]! / 20)).toEqual([7, 0, 1, 2, 4]);
  });

  it('rejects inconsistent inputs with a clear error', () => {
    const anchors = { boxes: [0, 0, 10, 10], levelCounts: [1] };
    expect(() => postprocessDetections({ clsLogits: [0, 0], boxDeltas: [0, 0, 0, 0] }, anchors, 1)).toThrow(
      /clsLogits has 2 values, expected 1 anchors x 1 classes/,
    );
    expect(() =>
      postprocessDetections({ clsLogits: [0], boxDeltas: [0, 0, 0, 0] }, anchors, 1, {
        scoreMode: 'cls*iou',
      }),
    ).toThrow(/needs iouLogits/);
    expect(() =>
      postprocessDetections({ clsLogits: [0], boxDeltas: [0, 0, 0, 0] }, { ...anchors, levelCounts: [2] }, 1),
    ).toThrow(/level counts sum to 2/);
  });
});

describe('losses vs torchvision', () => {
  it('sigmoid focal loss equals torchvision.ops.sigmoid_focal_loss', () => {
    const f = fx.focal;
    const x = tf.tensor1d(f.logits);
    const t = tf.tensor1d(f.targets);
    const l = sigmoidFocalLoss(x, t);
    expect(relativeMaxDiff(l.dataSync(), f.loss_none)).toBeLessThan(1e-5);
    expect(tf.sum(l).dataSync()[0]).toBeCloseTo(f.loss_sum, 4);
    const l2 = sigmoidFocalLoss(x, t, { alpha: 0.5, gamma: 1 });
    expect(relativeMaxDiff(l2.dataSync(), f.loss_none_a05_g1)).toBeLessThan(1e-5);
    tf.dispose([x, t, l, l2]);
  });

  const L = fx.loss;
  const a = L.anchors.length / 4;
  const outputs = () => ({
    clsLogits: tf.tensor3d(L.cls_logits, [2, a, L.numClasses]),
    boxDeltas: tf.tensor3d(L.box_deltas, [2, a, 4]),
    iouLogits: tf.tensor3d(L.iou_logits, [2, a, 1]),
  });
  const cases: Array<[string, LossOptions, number]> = [
    ['l1 (torchvision v1 default)', { boxLoss: 'l1' }, L.box_l1],
    ['smooth-L1, beta 1', { boxLoss: 'smooth_l1', smoothL1Beta: 1 }, L.box_smooth_l1],
    ['smooth-L1, beta 1/9', { boxLoss: 'smooth_l1' }, L.box_smooth_l1_beta_1_9],
    ['GIoU', { boxLoss: 'giou' }, L.box_giou],
  ];
  for (const [name, options, expected] of cases) {
    it(`focal + ${name} equal RetinaNetHead.compute_loss; IoU BCE equals its reference`, () => {
      const o = outputs();
      const loss = detectionLoss(o, L.anchors, L.images, options);
      expect(loss.numPositives).toBe(
        L.images.reduce((n, im) => n + Array.from(im.matchedIdxs).filter((m) => m >= 0).length, 0),
      );
      expect(relativeMaxDiff([loss.cls.dataSync()[0]!], [L.cls])).toBeLessThan(1e-5);
      expect(relativeMaxDiff([loss.box.dataSync()[0]!], [expected])).toBeLessThan(1e-5);
      expect(relativeMaxDiff([loss.iou!.dataSync()[0]!], [L.iou_bce])).toBeLessThan(1e-5);
      expect(loss.total.dataSync()[0]).toBeCloseTo(L.cls + expected + L.iou_bce, 4);
      tf.dispose([o.clsLogits, o.boxDeltas, o.iouLogits, loss.total, loss.cls, loss.box, loss.iou!]);
    });
  }

  it('weights l1, l2 and batch normalisation: hand-computed from the per-term values', () => {
    const o = outputs();
    const perImage = detectionLoss(o, L.anchors, L.images, { boxLoss: 'giou' });
    const weighted = detectionLoss(o, L.anchors, L.images, { boxLoss: 'giou', boxWeight: 2, iouWeight: 0.5 });
    expect(weighted.total.dataSync()[0]).toBeCloseTo(L.cls + 2 * L.box_giou + 0.5 * L.iou_bce, 4);
    // Batch normalisation with 1 image equals per-image normalisation.
    const one = {
      clsLogits: tf.slice(o.clsLogits, [0, 0, 0], [1, a, L.numClasses]),
      boxDeltas: tf.slice(o.boxDeltas, [0, 0, 0], [1, a, 4]),
      iouLogits: tf.slice(o.iouLogits, [0, 0, 0], [1, a, 1]),
    };
    const b1 = detectionLoss(one, L.anchors, [L.images[0]!], { normalization: 'batch' });
    const p1 = detectionLoss(one, L.anchors, [L.images[0]!], { normalization: 'per-image' });
    expect(b1.total.dataSync()[0]).toBeCloseTo(p1.total.dataSync()[0]!, 6);
    tf.dispose(
      [o, one, perImage, weighted, b1, p1].flatMap((x) =>
        Object.values(x).filter((v) => v instanceof tf.Tensor),
      ),
    );
  });

  it("iouLossOn 'all' (the thesis's Eq. 1.4): background anchors add BCE(logit, 0); ignored ones nothing", () => {
    // Three anchors, one class, one box [0,0,10,20]. Anchor 0 [0,0,10,10] is positive with zero deltas,
    // so its decoded box is itself: IoU 100 / 200 = 0.5. Anchor 1 is background, anchor 2 ignored.
    // BCE with logits x and target t = log(1 + e^x) - x t. One positive: the normaliser is 1.
    const anchors = [0, 0, 10, 10, 20, 20, 30, 30, 40, 40, 50, 50];
    const targets: ImageTargets[] = [{ matchedIdxs: [0, -1, -2], gtBoxes: [0, 0, 10, 20], gtLabels: [0] }];
    const o = {
      clsLogits: tf.zeros([1, 3, 1]),
      boxDeltas: tf.zeros([1, 3, 4]),
      iouLogits: tf.tensor3d([1, 2, 5], [1, 3, 1]),
    };
    const bce = (x: number, t: number) => Math.log(1 + Math.exp(x)) - x * t;
    const before = tf.memory().numTensors;
    const pos = detectionLoss(o, anchors, targets);
    const all = detectionLoss(o, anchors, targets, { iouLossOn: 'all' });
    expect(pos.iou!.dataSync()[0]).toBeCloseTo(bce(1, 0.5), 5); // 0.81326
    expect(all.iou!.dataSync()[0]).toBeCloseTo(bce(1, 0.5) + bce(2, 0), 5); // 0.81326 + 2.12693
    // The other terms do not depend on the option.
    expect(all.cls.dataSync()[0]).toBeCloseTo(pos.cls.dataSync()[0]!, 6);
    expect(all.box.dataSync()[0]).toBeCloseTo(pos.box.dataSync()[0]!, 6);
    // No positives at all: only the background term remains.
    const none = detectionLoss(o, anchors, [{ ...targets[0]!, matchedIdxs: [-1, -1, -2] }], {
      iouLossOn: 'all',
    });
    expect(none.iou!.dataSync()[0]).toBeCloseTo(bce(1, 0) + bce(2, 0), 5);
    tf.dispose([pos, all, none].flatMap((x) => Object.values(x).filter((v) => v instanceof tf.Tensor)));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(o));
  });

  it('soft per-anchor weights scale the box and IoU terms of positives only', () => {
    const o = outputs();
    const plain = detectionLoss(o, L.anchors, L.images);
    const withWeights = (w: number) =>
      L.images.map((im) => ({ ...im, weights: new Float32Array(a).fill(w) }));
    const ones = detectionLoss(o, L.anchors, withWeights(1));
    const halves = detectionLoss(o, L.anchors, withWeights(0.5));
    expect(ones.total.dataSync()[0]).toBeCloseTo(plain.total.dataSync()[0]!, 6);
    expect(halves.cls.dataSync()[0]).toBeCloseTo(L.cls, 4);
    expect(halves.box.dataSync()[0]).toBeCloseTo(L.box_giou / 2, 4);
    expect(halves.iou!.dataSync()[0]).toBeCloseTo(L.iou_bce / 2, 4);
    expect(() => detectionLoss(o, L.anchors, [{ ...L.images[0]!, weights: [1] }, L.images[1]!])).toThrow(
      /1 weights for/,
    );
    tf.dispose(
      [o, plain, ones, halves].flatMap((x) => Object.values(x).filter((v) => v instanceof tf.Tensor)),
    );
  });

  it('the IoU target is not differentiated: the IoU loss sends no gradient into the box deltas', () => {
    const o = outputs();
    const deltas = tf.variable(o.boxDeltas);
    const iouLogits = tf.variable(o.iouLogits);
    const { grads, value } = tf.variableGrads(
      () => detectionLoss({ clsLogits: o.clsLogits, boxDeltas: deltas, iouLogits }, L.anchors, L.images).iou!,
      [deltas, iouLogits],
    );
    expect(tf.max(tf.abs(grads[deltas.name]!)).dataSync()[0]).toBe(0);
    expect(tf.max(tf.abs(grads[iouLogits.name]!)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([o.clsLogits, o.boxDeltas, o.iouLogits, deltas, iouLogits, value, ...Object.values(grads)]);
  });

  it('no tensor leaks across loss evaluations and gradient steps', () => {
    const o = outputs();
    const deltas = tf.variable(o.boxDeltas);
    const step = () => {
      const { value, grads } = tf.variableGrads(
        () =>
          detectionLoss(
            { clsLogits: o.clsLogits, boxDeltas: deltas, iouLogits: o.iouLogits },
            L.anchors,
            L.images,
          ).total,
        [deltas],
      );
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const n = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    const l = detectionLoss(o, L.anchors, L.images);
    tf.dispose([l.total, l.cls, l.box, l.iou!]);
    expect(tf.memory().numTensors).toBe(n);
    tf.dispose([o.clsLogits, o.boxDeltas, o.iouLogits, deltas]);
  });

  it('rejects malformed targets naming the image and anchor', () => {
    const o = outputs();
    const bad = [
      { ...L.images[0]!, matchedIdxs: Array.from(L.images[0]!.matchedIdxs, (m, j) => (j === 5 ? 9 : m)) },
      L.images[1]!,
    ];
    expect(() => detectionLoss(o, L.anchors, bad)).toThrow(/image 0 anchor 5 matched to gt 9 of 3/);
    expect(() => detectionLoss(o, L.anchors, [L.images[0]!])).toThrow(/1 targets for a batch of 2/);
    const badLabel = [{ ...L.images[0]!, gtLabels: [0, 7, 1] }, L.images[1]!];
    expect(() => detectionLoss(o, L.anchors, badLabel)).toThrow(/label 7/);
    tf.dispose([o.clsLogits, o.boxDeltas, o.iouLogits]);
  });
});
