import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ModelLike, modelStats } from '../src/model-stats.js';

// Reference: tooling/fixtures/metrics_flops.py builds mmdetection's RetinaNet R50-FPN (11
// classes) in PyTorch and counts it with mmcv's hooks; the thesis reports 36.31 M / 135.73 G.
const ref = JSON.parse(
  readFileSync(new URL('./fixtures/retinanet_r50_mmdet_flops.json', import.meta.url), 'utf8'),
);

type T = tf.SymbolicTensor;
const init = { kernelInitializer: 'zeros', biasInitializer: 'zeros' } as const;

function conv(
  x: T,
  filters: number,
  k: number,
  stride: number,
  name: string,
  bias: boolean,
  frozen = false,
): T {
  const l = tf.layers.conv2d({
    filters,
    kernelSize: k,
    strides: stride,
    padding: k > 1 ? 'same' : 'valid',
    useBias: bias,
    name,
    ...init,
  });
  l.trainable = !frozen;
  return l.apply(x) as T;
}
function bn(x: T, name: string, frozen: boolean): T {
  const l = tf.layers.batchNormalization({ name, epsilon: 1e-5 });
  l.trainable = !frozen;
  return l.apply(x) as T;
}
const relu = (x: T, name: string): T => tf.layers.reLU({ name }).apply(x) as T;

function bottleneck(x: T, planes: number, stride: number, down: boolean, name: string, frozen: boolean): T {
  let y = relu(bn(conv(x, planes, 1, 1, `${name}_c1`, false, frozen), `${name}_bn1`, frozen), `${name}_r1`);
  y = relu(bn(conv(y, planes, 3, stride, `${name}_c2`, false, frozen), `${name}_bn2`, frozen), `${name}_r2`);
  y = bn(conv(y, planes * 4, 1, 1, `${name}_c3`, false, frozen), `${name}_bn3`, frozen);
  const id = down
    ? bn(conv(x, planes * 4, 1, stride, `${name}_down`, false, frozen), `${name}_dbn`, frozen)
    : x;
  return relu(tf.layers.add({ name: `${name}_add` }).apply([y, id]) as T, `${name}_r3`);
}

function retinaNetR50(h: number, w: number, numClasses: number): tf.LayersModel {
  const input = tf.input({ shape: [h, w, 3] });
  let x = relu(bn(conv(input, 64, 7, 2, 'stem', false, true), 'stem_bn', true), 'stem_relu');
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'stem_pool' }).apply(x) as T;
  const feats: T[] = [];
  [3, 4, 6, 3].forEach((blocks, s) => {
    for (let b = 0; b < blocks; b++) {
      x = bottleneck(x, 64 * 2 ** s, b === 0 && s > 0 ? 2 : 1, b === 0, `l${s + 1}_${b}`, s === 0);
    }
    feats.push(x);
  });
  const lat = feats.slice(1).map((f, i) => conv(f, 256, 1, 1, `lat${i + 3}`, true));
  for (const i of [2, 1]) {
    const up = tf.layers.upSampling2d({ size: [2, 2], name: `up${i + 3}` }).apply(lat[i]!) as T;
    lat[i - 1] = tf.layers.add({ name: `sum${i + 2}` }).apply([lat[i - 1]!, up]) as T;
  }
  const outs = lat.map((l, i) => conv(l, 256, 3, 1, `fpn${i + 3}`, true));
  const p6 = conv(feats[3]!, 256, 3, 2, 'p6', true);
  outs.push(p6, conv(p6, 256, 3, 2, 'p7', true));
  // The head's convolutions are shared across levels, as in RetinaNet.
  const tower = (prefix: string) =>
    Array.from({ length: 4 }, (_, i) => [
      tf.layers.conv2d({ filters: 256, kernelSize: 3, padding: 'same', name: `${prefix}${i}`, ...init }),
      tf.layers.reLU({ name: `${prefix}${i}_relu` }),
    ]).flat();
  const clsTower = tower('cls_t');
  const regTower = tower('reg_t');
  const cls = tf.layers.conv2d({
    filters: 9 * numClasses,
    kernelSize: 3,
    padding: 'same',
    name: 'cls',
    ...init,
  });
  const reg = tf.layers.conv2d({ filters: 36, kernelSize: 3, padding: 'same', name: 'reg', ...init });
  const heads: T[] = [];
  for (const o of outs) {
    heads.push(cls.apply(clsTower.reduce((t, l) => l.apply(t) as T, o)) as T);
    heads.push(reg.apply(regTower.reduce((t, l) => l.apply(t) as T, o)) as T);
  }
  return tf.model({ inputs: input, outputs: heads });
}

describe('modelStats reproduces the thesis baseline (mmdet RetinaNet R50-FPN, 11 classes)', () => {
  let model: tf.LayersModel;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    model = retinaNetR50(800, 832, ref.num_classes);
  });
  afterAll(() => model?.dispose());

  it('parameters: 36.31 M trainable, like mmcv (frozen stem + layer1 excluded)', () => {
    const s = modelStats(model as unknown as ModelLike, { inputShape: [800, 832, 3] });
    expect(s.trainableParams).toBe(ref.torch_trainable_params);
    // tfjs also counts BatchNorm's moving mean / variance, which PyTorch keeps as buffers.
    expect(s.params).toBe(ref.torch_params + ref.bn_running_stats);
    expect(s.paramsM.toFixed(2)).toBe('36.31');
  });

  it('FLOPs at 800x832 match the PyTorch/mmcv count: 135.73 G', () => {
    for (const c of ref.cases as {
      input_hw: [number, number];
      parts: Record<string, number>;
      mmcv_flops: number;
    }[]) {
      const [h, w] = c.input_hw;
      const s = modelStats(model as unknown as ModelLike, { inputShape: [h, w, 3] });
      expect(s.macs).toBe(c.parts.conv_macs);
      // mmdet's FPN upsamples with F.interpolate, which mmcv cannot see; here it is an
      // UpSampling2D layer, which the mmcv convention counts (1 per output element).
      const up = s.layers.filter((l) => l.className === 'UpSampling2D').reduce((t, l) => t + l.flops, 0);
      expect(up).toBe(256 * ((h / 16) * (w / 16) + (h / 8) * (w / 8)));
      expect(s.flops - up).toBe(c.mmcv_flops);
      if (h === 800) expect(s.gflops.toFixed(2)).toBe('135.73');
    }
  });
});
