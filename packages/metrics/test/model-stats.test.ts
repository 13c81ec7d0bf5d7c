import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { layerFlops, type ModelLike, measureModelFps, modelStats } from '../src/model-stats.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Input HxWx3 -> conv 3x3 same 4 (bias, relu) -> BN -> maxpool 2 -> conv 3x3 valid 6 (no bias) -> flatten -> dense 5 */
function tinyNet(h: number | null, w: number | null): tf.LayersModel {
  const input = tf.input({ shape: [h, w, 3] });
  let x = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({ filters: 6, kernelSize: 3, useBias: false, name: 'c2' })
    .apply(x) as tf.SymbolicTensor;
  if (h !== null) {
    x = tf.layers.flatten().apply(x) as tf.SymbolicTensor;
    x = tf.layers.dense({ units: 5, name: 'fc' }).apply(x) as tf.SymbolicTensor;
  }
  return tf.model({ inputs: input, outputs: x });
}

describe('modelStats on a hand-computed tiny conv net (input 8x10x3)', () => {
  // c1: out 8x10x4 = 320 values, each 3*3*3 = 27 multiply-adds -> 8640 MACs; bias 320; fused ReLU 320
  //     params 3*3*3*4 + 4 = 112
  // bn: 320 elements x 2 (scale + shift) = 640; params 4 x (gamma, beta, mean, var) = 16, trainable 8
  // pool: 1 per input element = 320; output 4x5x4
  // c2: valid 3x3 -> 2x3x6 = 36 values x 3*3*4 = 36 -> 1296 MACs; no bias; params 216
  // fc: 36 -> 5: 180 MACs (mmcv ignores the dense bias); params 36*5 + 5 = 185
  const model = tinyNet(8, 10);

  it('counts parameters', () => {
    const s = modelStats(model as unknown as ModelLike, { inputShape: [8, 10, 3] });
    expect(s.params).toBe(112 + 16 + 216 + 185);
    expect(s.trainableParams).toBe(112 + 8 + 216 + 185);
    expect(s.paramsM).toBeCloseTo(521e-6, 15);
  });

  it('mmcv convention: 1 FLOP per multiply-add plus bias, BN, ReLU, pooling', () => {
    const s = modelStats(model as unknown as ModelLike, { inputShape: [8, 10, 3] });
    expect(s.macs).toBe(8640 + 1296 + 180);
    expect(s.flops).toBe(8640 + 320 + 320 + 640 + 320 + 1296 + 180);
    expect(s.outputShapes).toEqual([[1, 5]]);
    expect(s.layers.find((l) => l.name === 'c2')!.outputShapes).toEqual([[1, 2, 3, 6]]);
  });

  it('macs convention and 2 FLOPs per multiply-add', () => {
    const s = modelStats(model as unknown as ModelLike, { inputShape: [8, 10, 3], convention: 'macs' });
    expect(s.flops).toBe(8640 + 1296 + 180);
    const s2 = modelStats(model as unknown as ModelLike, {
      inputShape: [8, 10, 3],
      convention: 'macs',
      flopsPerMac: 2,
    });
    expect(s2.flops).toBe(2 * (8640 + 1296 + 180));
    const s3 = modelStats(model as unknown as ModelLike, { inputShape: [8, 10, 3], flopsPerMac: 2 });
    expect(s3.flops).toBe(2 * (8640 + 1296 + 180) + 320 + 320 + 640 + 320);
  });

  it('a model built for any size is measured at the size asked for', () => {
    const free = tinyNet(null, null) as unknown as ModelLike;
    const a = modelStats(free, { inputShape: [8, 10, 3] });
    // Same conv/BN/pool stack as above without the dense layer.
    expect(a.flops).toBe(8640 + 320 + 320 + 640 + 320 + 1296);
    // 16x20: every spatial count x4 except c2 (valid 3x3 on 8x10 -> 6x8 = 48 positions)
    const b = modelStats(free, { inputShape: [16, 20, 3] });
    expect(b.flops).toBe(4 * (8640 + 320 + 320 + 640 + 320) + 48 * 6 * 36);
  });

  it('a layer applied several times counts once per application (hand-computed)', () => {
    const input = tf.input({ shape: [10, 12, 3] });
    const conv = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same' });
    const a = conv.apply(input) as tf.SymbolicTensor;
    const pooled = tf.layers.maxPooling2d({ poolSize: 2 }).apply(a) as tf.SymbolicTensor;
    const shared = tf.layers.conv2d({ filters: 8, kernelSize: 1 });
    const b = shared.apply(a) as tf.SymbolicTensor;
    const c = shared.apply(pooled) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: [b, c] });
    const s = modelStats(model as unknown as ModelLike, { inputShape: [10, 12, 3], convention: 'macs' });
    // 10*12*8 outputs x 27 MACs; the shared 1x1 conv: 10*12*8 x 8 and 5*6*8 x 8.
    expect(s.macs).toBe(10 * 12 * 8 * 27 + 10 * 12 * 8 * 8 + 5 * 6 * 8 * 8);
    // Its weights count once.
    expect(s.params).toBe(3 * 3 * 3 * 8 + 8 + 8 * 8 + 8);
    model.dispose();
  });

  it('walks nested models and strided convolutions', () => {
    const inner = tinyNet(null, null);
    const input = tf.input({ shape: [null, null, 3] });
    const y = inner.apply(input) as tf.SymbolicTensor;
    // stride 2 'same' on 2x3x6 -> 1x2x8 = 16 outputs x 3*3*6 = 864 MACs + 16 bias
    const z = tf.layers
      .conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', name: 'down' })
      .apply(y);
    const outer = tf.model({ inputs: input, outputs: z as tf.SymbolicTensor }) as unknown as ModelLike;
    const s = modelStats(outer, { inputShape: [8, 10, 3] });
    expect(s.flops).toBe(8640 + 320 + 320 + 640 + 320 + 1296 + 864 + 16);
    expect(s.layers.map((l) => l.name)).toContain(`${inner.name}/c1`);
    expect(s.params).toBe(112 + 16 + 216 + 6 * 9 * 8 + 8);
  });

  it('layerFlops for layers the net above does not use', () => {
    // depthwise 3x3 x2 on 4x4x3 same -> 4x4x6 = 96 outputs x 9 = 864 MACs, + 96 bias
    expect(
      layerFlops('DepthwiseConv2D', { kernelSize: [3, 3], useBias: true }, [[1, 4, 4, 3]], [[1, 4, 4, 6]]),
    ).toEqual({ macs: 864, flops: 960 });
    expect(layerFlops('UpSampling2D', {}, [[1, 2, 2, 5]], [[1, 4, 4, 5]])).toEqual({ macs: 0, flops: 80 });
    expect(layerFlops('Activation', { activation: 'sigmoid' }, [[1, 4]], [[1, 4]])).toEqual({
      macs: 0,
      flops: 0,
    });
    expect(
      layerFlops(
        'Add',
        {},
        [
          [1, 4],
          [1, 4],
        ],
        [[1, 4]],
      ),
    ).toEqual({ macs: 0, flops: 0 });
  });
});

describe('measureModelFps', () => {
  it('times batch-1 predictions and leaks no tensors', async () => {
    const model = tinyNet(8, 10);
    const before = tf.memory().numTensors;
    const r = await measureModelFps(tf, model, [8, 10, 3], { warmup: 1, runs: 3 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.timesMs).toHaveLength(3);
    expect(r.fps).toBeGreaterThan(0);
    model.dispose();
  });
});
