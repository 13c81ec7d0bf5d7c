import { importTorchWeights, parseSafetensors, resnet, safetensorsSource } from '@bmc/backbone';
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { neck, pan } from '../src/index.js';
import { type ArrayFixture, readBytes, readJson, relativeMaxDiff, useCpu } from './helpers.js';

interface NeckFixture {
  inputs: ArrayFixture[];
  cases: Array<{
    name: string;
    levels: number[];
    extra: 'p5' | 'c5' | null;
    outChannels: number;
    outputs: ArrayFixture[];
  }>;
  pan_inputs: ArrayFixture[];
  pan_cases: Array<{ name: string; reduction: number; outputs: ArrayFixture[] }>;
}

const fx = readJson<NeckFixture>('neck_parity.json');
const weights = safetensorsSource(
  parseSafetensors(readBytes('neck_weights.safetensors'), 'neck_weights.safetensors'),
);
const models: tf.LayersModel[] = [];
function track(m: tf.LayersModel): tf.LayersModel {
  models.push(m);
  return m;
}

beforeAll(useCpu);
afterEach(() => {
  while (models.length) models.pop()!.dispose();
});

function symbolicInputs(arrays: ArrayFixture[]): tf.SymbolicTensor[] {
  return arrays.map((a) => tf.input({ shape: a.shape.slice(1) }));
}

function run(model: tf.LayersModel, arrays: ArrayFixture[]): tf.Tensor[] {
  const xs = arrays.map((a) => tf.tensor(a.data, a.shape));
  const out = model.predict(xs) as tf.Tensor | tf.Tensor[];
  tf.dispose(xs);
  return Array.isArray(out) ? out : [out];
}

describe('FPN vs torchvision.ops.FeaturePyramidNetwork', () => {
  for (const c of fx.cases) {
    it(`${c.name}: levels [${c.levels}]${c.extra ? `, P6/P7 from ${c.extra}` : ''} within 1e-4`, () => {
      const inputs = symbolicInputs(fx.inputs);
      const levels = c.extra ? [...c.levels, 6, 7] : c.levels;
      const out = neck(inputs, { kind: 'fpn', levels, channels: c.outChannels, extraFrom: c.extra ?? 'p5' });
      expect(out.strides).toEqual(levels.map((l) => 2 ** l));
      const model = track(tf.model({ inputs, outputs: out.features }));
      const report = importTorchWeights(model, weights, {
        layerPrefix: 'backbone.fpn.',
        sourcePrefix: `${c.name}.`,
      });
      expect(report.loaded.length).toBeGreaterThan(0);
      const ys = run(model, fx.inputs);
      expect(ys.length).toBe(c.outputs.length);
      ys.forEach((y, i) => {
        expect(y.shape).toEqual(c.outputs[i]!.shape);
        expect(relativeMaxDiff(y.dataSync(), c.outputs[i]!.data)).toBeLessThan(1e-4);
      });
      tf.dispose(ys);
    });
  }
});

describe('PAN and PAN-attn vs a PyTorch transcription of DESIGN.md', () => {
  for (const c of fx.pan_cases) {
    it(`${c.name} within 1e-4`, () => {
      const inputs = symbolicInputs(fx.pan_inputs);
      const outputs = pan(inputs, { attention: c.name === 'pan_attn', attentionReduction: c.reduction });
      const model = track(tf.model({ inputs, outputs }));
      importTorchWeights(model, weights, { layerPrefix: 'backbone.pan.', sourcePrefix: `${c.name}.` });
      const ys = run(model, fx.pan_inputs);
      ys.forEach((y, i) => {
        expect(y.shape).toEqual(c.outputs[i]!.shape);
        expect(relativeMaxDiff(y.dataSync(), c.outputs[i]!.data)).toBeLessThan(1e-4);
      });
      tf.dispose(ys);
    });
  }

  it('PAN-attn with saturated attention (w = 1) equals plain PAN', () => {
    const inputs = symbolicInputs(fx.pan_inputs);
    const plain = track(tf.model({ inputs, outputs: pan(inputs, { attention: false, prefix: 'a.' }) }));
    const attn = track(
      tf.model({ inputs, outputs: pan(inputs, { attention: true, attentionReduction: 4, prefix: 'b.' }) }),
    );
    for (const layer of attn.layers) {
      if (layer.name.startsWith('b.fc2.') && layer.getClassName() === 'Dense') {
        const [k, b] = layer.getWeights();
        layer.setWeights([tf.zerosLike(k!), tf.fill(b!.shape, 40)]); // sigmoid(40) == 1 in float32
      } else if (/^b\.(downsample|fuse)\.\d+$/.test(layer.name)) {
        layer.setWeights(plain.getLayer(`a.${layer.name.slice(2)}`).getWeights());
      }
    }
    const a = run(plain, fx.pan_inputs);
    const b = run(attn, fx.pan_inputs);
    a.forEach((y, i) => {
      expect(relativeMaxDiff(b[i]!.dataSync(), y.dataSync())).toBeLessThan(1e-6);
    });
    tf.dispose([...a, ...b]);
  });
});

describe('neck on a backbone', () => {
  it('builds every kind on a dynamic-size input; shapes follow the strides; no leaks; gradients reach every weight', () => {
    for (const kind of ['fpn', 'pan', 'pan-attn'] as const) {
      const input = tf.input({ shape: [null, null, 3] });
      // Trainable BN normalises activations in training mode, so the attention sigmoid never saturates.
      const { features } = resnet(input, {
        depth: 18,
        widthMultiplier: 1 / 16,
        frozenStages: -1,
        frozenBatchNorm: false,
      });
      const out = neck(features, { kind, levels: [3, 4, 5, 6, 7], channels: 8, attentionReduction: 4 });
      const model = track(tf.model({ inputs: input, outputs: out.features }));
      // A positive fc1 bias keeps the attention MLP's few ReLUs alive whatever the random init,
      // so a zero gradient can only mean a broken connection.
      for (const layer of model.layers) {
        if (/\.fc1\.\d+$/.test(layer.name)) {
          const [k, b] = layer.getWeights();
          layer.setWeights([k!, tf.onesLike(b!)]);
        }
      }
      const x = tf.randomNormal([1, 128, 96, 3]);
      const warm = model.predict(x) as tf.Tensor[];
      expect(warm.map((t) => t.shape)).toEqual(out.strides.map((s) => [1, 128 / s, Math.ceil(96 / s), 8]));
      tf.dispose(warm);
      const n = tf.memory().numTensors;
      tf.dispose(model.predict(x) as tf.Tensor[]);
      expect(tf.memory().numTensors).toBe(n);

      const neckWeights = model.trainableWeights.filter((w) => /^backbone\.(fpn|pan)\./.test(w.originalName));
      const { value, grads } = tf.variableGrads(
        () =>
          tf.addN(
            (model.apply(x, { training: true }) as tf.Tensor[]).map((t) => tf.sum(tf.square(t))),
          ) as tf.Scalar,
        neckWeights.map((w) => w.read() as tf.Variable),
      );
      for (const w of neckWeights) {
        expect(
          tf.max(tf.abs(grads[(w.read() as tf.Variable).name]!)).dataSync()[0],
          w.originalName,
        ).toBeGreaterThan(0);
      }
      tf.dispose([x, value, ...Object.values(grads)]);
      model.dispose();
      models.pop();
    }
  });

  it('rejects bad level lists with a clear message', () => {
    const fs = [1, 2, 3, 4].map((i) => tf.input({ shape: [64 / 2 ** i, 64 / 2 ** i, 4] }));
    expect(() => neck(fs, { kind: 'fpn', levels: [2, 4] })).toThrow(/consecutive/);
    expect(() => neck(fs, { kind: 'fpn', levels: [1, 2] })).toThrow(/2\.\.7/);
    expect(() => neck(fs, { kind: 'fpn', levels: [6, 7] })).toThrow(/at least one level/);
    expect(() => neck(fs.slice(0, 3), { kind: 'fpn', levels: [3] })).toThrow(/C2\.\.C5/);
    expect(() => neck(fs, { kind: 'bifpn' as 'fpn', levels: [3, 4] })).toThrow(/unknown kind 'bifpn'/);
  });
});
