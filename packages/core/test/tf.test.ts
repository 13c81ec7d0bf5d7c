import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { alignedGiou, alignedIou, BoxCoder } from '../src/index.js';
import { alignedGiouTensor, alignedIouTensor, decodeDeltasTensor } from '../src/tf.js';
import { expectClose, loadFixture } from './helpers.js';

const fx = loadFixture('torchvision_core.json');

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('tensor box functions agree with the typed-array ones', () => {
  const n = 9;
  const a = fx.iou.a.slice(0, 4 * n);
  const b = fx.iou.b.slice(0, 4 * n);

  it('aligned IoU and GIoU', () => {
    const ta = tf.tensor2d(a, [n, 4]);
    const tb = tf.tensor2d(b, [n, 4]);
    expectClose(alignedIouTensor(ta, tb).dataSync(), alignedIou(a, b), 1e-5);
    expectClose(alignedGiouTensor(ta, tb).dataSync(), alignedGiou(a, b), 1e-5);
    tf.dispose([ta, tb]);
  });

  it('decode equals torchvision BoxCoder (via the fixture), clamp included', () => {
    const c = fx.box_coder.cases[1];
    const out = decodeDeltasTensor(
      tf.tensor2d(c.deltas, [40, 4]),
      tf.tensor2d(fx.box_coder.anchors, [40, 4]),
      c.weights,
    );
    expectClose(out.dataSync(), c.decoded, 1e-5);
    expectClose(
      out.dataSync(),
      new BoxCoder({ weights: c.weights }).decode(c.deltas, fx.box_coder.anchors),
      1e-5,
    );
  });

  it('GIoU loss has finite gradients, also for a degenerate predicted box', () => {
    const gt = tf.tensor2d([0, 0, 10, 10, 0, 0, 10, 10], [2, 4]);
    const pred = tf.tensor2d([1, 1, 9, 12, 5, 5, 5, 5], [2, 4]);
    const g = tf.grad((p: tf.Tensor) => tf.sum(tf.sub(1, alignedGiouTensor(p as tf.Tensor2D, gt))))(pred);
    const values = Array.from(g.dataSync());
    expect(values.every(Number.isFinite)).toBe(true);
    expect(values.some((v) => v !== 0)).toBe(true);
  });

  it('leaks no tensors', () => {
    const ta = tf.tensor2d(a, [n, 4]);
    const tb = tf.tensor2d(b, [n, 4]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose([alignedIouTensor(ta, tb), alignedGiouTensor(ta, tb), decodeDeltasTensor(ta, tb)]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([ta, tb]);
  });
});
