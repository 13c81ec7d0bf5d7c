import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildClassifier, normalizeCrops, resolveVitOptions } from '../src/index.js';
import { predictLogits, synthCrops } from '../src/train.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const tiny = { dim: 16, depth: 2, heads: 2, patch: 4, mlpRatio: 2 };

describe('ViT classifier (arch vit)', () => {
  it('32 px crops, patch 4: 64 tokens; logits [N, K]; batched inference equals one call and leaks nothing', () => {
    const model = buildClassifier({ numClasses: 5, cropSize: 32, arch: 'vit', vit: tiny, seed: 1 });
    expect(model.outputs[0]!.shape).toEqual([null, 5]);
    expect(model.getLayer('vit.tokens').outputShape).toEqual([null, 64, 16]);
    // Hand count: patch conv 4*4*3*16+16; per block 2 LN (2*2*16), 2 heads x q/k/v (3*2*(16*8+8)),
    // proj 16*16+16, fc1 16*32+32, fc2 32*16+16; the position conv 3*3*16*16+16; final LN 32; logits 16*5+5.
    const perBlock = 64 + 6 * (16 * 8 + 8) + (16 * 16 + 16) + (16 * 32 + 32) + (32 * 16 + 16);
    expect(model.countParams()).toBe(
      4 * 4 * 3 * 16 + 16 + 2 * perBlock + (9 * 16 * 16 + 16) + 32 + (16 * 5 + 5),
    );
    const crops = synthCrops(1, { cropSize: 32, margin: 0.15 }, 11).crops.slice(0, 5);
    const x = normalizeCrops(crops);
    const before = tf.memory().numTensors;
    const batched = predictLogits(model, x, 32, 2);
    expect(tf.memory().numTensors).toBe(before);
    const whole = tf.tidy(
      () => (model.predict(tf.tensor4d(x, [5, 32, 32, 3])) as tf.Tensor).dataSync() as Float32Array,
    );
    batched.forEach((v, i) => {
      expect(v).toBeCloseTo(whole[i]!, 4);
    });
    model.dispose();
  });

  it('one head: no concatenation, same output shape', () => {
    const model = buildClassifier({ numClasses: 4, cropSize: 32, arch: 'vit', vit: { ...tiny, heads: 1 } });
    expect(model.outputs[0]!.shape).toEqual([null, 4]);
    expect(model.layers.some((l) => l.getClassName() === 'Concatenate')).toBe(false);
    model.dispose();
  });

  it('a seed fixes every kernel, the position convolution included', () => {
    const build = (seed: number) =>
      buildClassifier({ numClasses: 3, cropSize: 32, arch: 'vit', vit: tiny, seed });
    const [a, b, c] = [build(7), build(7), build(8)];
    const w = (m: tf.LayersModel) => m.getWeights().map((t) => Array.from(t.dataSync()));
    expect(w(a)).toEqual(w(b));
    const pos = (m: tf.LayersModel) => Array.from(m.getLayer('vit.pos.conv').getWeights()[0]!.dataSync());
    expect(pos(a)).not.toEqual(pos(c));
    for (const m of [a, b, c]) m.dispose();
  });

  it('defaults (dim 64, depth 4, heads 4, patch = crop / 8) and clear errors for sizes that do not fit', () => {
    expect(resolveVitOptions(64)).toEqual({ dim: 64, depth: 4, heads: 4, patch: 8, mlpRatio: 4 });
    expect(() => resolveVitOptions(32, { dim: 30, heads: 4 })).toThrow(
      /vit: heads \(4\) must divide vit: dim \(30\)/,
    );
    expect(() => resolveVitOptions(32, { patch: 5 })).toThrow(/patch \(5\) must divide the crop size \(32\)/);
    expect(() => resolveVitOptions(36)).toThrow(
      /the default \(the crop size \/ 8\) needs the crop size divisible by 8, got 36/,
    );
    expect(() => resolveVitOptions(32, { depth: 0 })).toThrow(/vit: depth must be a positive integer, got 0/);
    expect(() => buildClassifier({ numClasses: 3, cropSize: 32, arch: 'vgg' as 'vit' })).toThrow(
      /arch must be/,
    );
  });
});
