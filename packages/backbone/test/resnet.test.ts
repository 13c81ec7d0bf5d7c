import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  countParameters,
  FrozenBatchNorm,
  importResNetSafetensors,
  type ResNetDepth,
  resnet,
  resnetChannels,
  WeightImportError,
} from '../src/index.js';
import { type ArrayFixture, readBytes, readJson, relativeMaxDiff, useCpu } from './helpers.js';

interface ResNetFixture {
  input: ArrayFixture;
  cases: Array<{ depth: ResNetDepth; widthMultiplier: number; weights: string; features: ArrayFixture[] }>;
  train_bn: {
    depth: ResNetDepth;
    widthMultiplier: number;
    weights: string;
    input: ArrayFixture;
    c5: ArrayFixture;
    bn1_running_mean_before: number[];
    bn1_running_mean_after: number[];
    bn1_running_var_before: number[];
    bn1_running_var_after: number[];
  };
  param_counts: Record<string, number>;
}

const fx = readJson<ResNetFixture>('resnet_parity.json');
const models: tf.LayersModel[] = [];

function build(
  depth: ResNetDepth,
  widthMultiplier: number,
  shape: [number, number],
  extra: { frozenStages?: number; frozenBatchNorm?: boolean } = {},
): tf.LayersModel {
  const input = tf.input({ shape: [shape[0], shape[1], 3] });
  const { features } = resnet(input, { depth, widthMultiplier, ...extra });
  const model = tf.model({ inputs: input, outputs: features });
  models.push(model);
  return model;
}

beforeAll(useCpu);
afterEach(() => {
  while (models.length) models.pop()!.dispose();
});

describe('resnet vs torchvision', () => {
  for (const c of fx.cases) {
    it(`ResNet${c.depth} x${c.widthMultiplier} C2..C5 match torchvision within 1e-4 (weights via safetensors)`, () => {
      const model = build(c.depth, c.widthMultiplier, [fx.input.shape[1]!, fx.input.shape[2]!]);
      const report = importResNetSafetensors(model, readBytes(c.weights), { source: c.weights });
      expect(report.missing).toEqual([]);
      expect(report.ignored).toContain('fc.weight');
      expect(report.ignored.some((k) => k.endsWith('num_batches_tracked'))).toBe(true);
      const x = tf.tensor(fx.input.data, fx.input.shape);
      const outs = model.predict(x) as tf.Tensor[];
      outs.forEach((o, i) => {
        expect(o.shape).toEqual(c.features[i]!.shape);
        expect(relativeMaxDiff(o.dataSync(), c.features[i]!.data)).toBeLessThan(1e-4);
      });
      tf.dispose([x, ...outs]);
    });
  }

  it('parameter counts equal torchvision for every depth (width 1/8, trainable BN)', () => {
    for (const depth of [18, 34, 50, 101] as ResNetDepth[]) {
      const model = build(depth, 1 / 8, [64, 64], { frozenBatchNorm: false });
      expect(countParameters(model).parameters).toBe(fx.param_counts[`${depth}@0.125`]);
      model.dispose();
      models.pop();
    }
  });

  it('reports the channels of C2..C5', () => {
    expect(resnetChannels(50)).toEqual([256, 512, 1024, 2048]);
    expect(resnetChannels(18)).toEqual([64, 128, 256, 512]);
    expect(resnetChannels(50, 1 / 32)).toEqual([8, 16, 32, 64]);
  });

  it('rejects bad options', () => {
    const input = tf.input({ shape: [32, 32, 3] });
    expect(() => resnet(input, { depth: 42 as ResNetDepth })).toThrow(/depth 42/);
    expect(() => resnet(input, { depth: 18, frozenStages: 7 })).toThrow(/frozenStages/);
    expect(() => resnet(input, { depth: 18, widthMultiplier: 0 })).toThrow(/widthMultiplier/);
  });
});

describe('BatchNorm modes', () => {
  const t = fx.train_bn;
  const shape: [number, number] = [t.input.shape[1]!, t.input.shape[2]!];

  it('trainable BN in training mode uses batch statistics like torch train() and updates the running mean', () => {
    const model = build(t.depth, t.widthMultiplier, shape, { frozenBatchNorm: false });
    importResNetSafetensors(model, readBytes(t.weights));
    const bn1 = model.getLayer('backbone.body.bn1');
    expect(bn1.getClassName()).toBe('BatchNormalization');
    const mean0 = bn1.getWeights()[2]!.dataSync().slice();
    expect(relativeMaxDiff(mean0, t.bn1_running_mean_before)).toBeLessThan(1e-6);
    const x = tf.tensor(t.input.data, t.input.shape);
    const outs = model.apply(x, { training: true }) as tf.Tensor[];
    expect(relativeMaxDiff(outs[3]!.dataSync(), t.c5.data)).toBeLessThan(1e-4);
    // Momentum: torch's 0.1 is tfjs's 0.9.
    const [, , mean1, var1] = bn1.getWeights().map((w) => w.dataSync());
    expect(relativeMaxDiff(mean1!, t.bn1_running_mean_after)).toBeLessThan(1e-5);
    // Known deviation: torch updates the running variance with the unbiased batch variance,
    // tfjs with the biased one. Undo Bessel's correction on torch's update (n = 2 x 16 x 16).
    const n = 2 * 16 * 16;
    const expectedVar = t.bn1_running_var_after.map((after, i) => {
      const before = t.bn1_running_var_before[i]!;
      const unbiased = (after - 0.9 * before) / 0.1;
      return 0.9 * before + 0.1 * unbiased * ((n - 1) / n);
    });
    expect(relativeMaxDiff(var1!, expectedVar)).toBeLessThan(1e-5);
    tf.dispose([x, ...outs]);
  });

  it('inference mode uses the running statistics; frozen BN does so in training mode too', () => {
    const trainable = build(t.depth, t.widthMultiplier, shape, { frozenBatchNorm: false });
    const frozen = build(t.depth, t.widthMultiplier, shape, { frozenBatchNorm: true });
    importResNetSafetensors(trainable, readBytes(t.weights));
    importResNetSafetensors(frozen, readBytes(t.weights));
    expect(frozen.getLayer('backbone.body.bn1')).toBeInstanceOf(FrozenBatchNorm);
    const x = tf.tensor(t.input.data, t.input.shape);
    const inference = (trainable.predict(x) as tf.Tensor[])[3]!;
    const frozenTrain = (frozen.apply(x, { training: true }) as tf.Tensor[])[3]!;
    const frozenInfer = (frozen.predict(x) as tf.Tensor[])[3]!;
    const trainMode = (trainable.apply(x, { training: true }) as tf.Tensor[])[3]!;
    expect(relativeMaxDiff(frozenTrain.dataSync(), inference.dataSync())).toBeLessThan(1e-5);
    expect(relativeMaxDiff(frozenInfer.dataSync(), inference.dataSync())).toBeLessThan(1e-5);
    // Batch statistics differ from the running ones: training mode really changes the output.
    expect(relativeMaxDiff(trainMode.dataSync(), inference.dataSync())).toBeGreaterThan(1e-2);
    tf.dispose([x, inference, frozenTrain, frozenInfer, trainMode]);
  });
});

describe('freezing and gradients', () => {
  it('gradients reach every trainable weight; frozen stem + layer1 and frozen BN never change', () => {
    const model = build(18, 1 / 16, [32, 32], { frozenStages: 1, frozenBatchNorm: true });
    const frozenPrefix = /^backbone\.body\.(conv1|bn1|layer1\.)/;
    for (const w of model.weights) {
      const frozen =
        frozenPrefix.test(w.originalName) ||
        /\/(gamma|beta|moving_mean|moving_variance)$/.test(w.originalName);
      expect(w.trainable, w.originalName).toBe(!frozen);
      // The tf.Variable flag is what optimizer.minimize() honours without a var list.
      expect((w.read() as tf.Variable).trainable, w.originalName).toBe(!frozen);
    }
    const trainable = model.trainableWeights;
    expect(trainable.length).toBeGreaterThan(0);
    expect(trainable.every((w) => /layer[234]\..*(conv|downsample\.0)/.test(w.originalName))).toBe(true);

    const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 1);
    const probes = model.outputs.map((o, i) =>
      tf.randomNormal([2, ...(o.shape.slice(1) as number[])], 0, 1, 'float32', i),
    );
    const loss = () =>
      tf.addN(
        (model.apply(x, { training: true }) as tf.Tensor[]).map((o, i) => tf.sum(tf.mul(o, probes[i]!))),
      ) as tf.Scalar;
    const { grads, value } = tf.variableGrads(
      loss,
      trainable.map((w) => w.read() as tf.Variable),
    );
    for (const w of trainable) {
      const g = grads[(w.read() as tf.Variable).name];
      expect(g, w.originalName).toBeDefined();
      expect(tf.max(tf.abs(g!)).dataSync()[0], w.originalName).toBeGreaterThan(0);
    }
    tf.dispose([value, ...Object.values(grads)]);

    const before = model.weights.map((w) => w.read().dataSync().slice());
    const sgd = tf.train.sgd(0.1);
    tf.tidy(() => {
      sgd.minimize(loss);
    });
    model.weights.forEach((w, i) => {
      const changed = relativeMaxDiff(w.read().dataSync(), before[i]!) > 0;
      expect(changed, w.originalName).toBe(w.trainable);
    });
    sgd.dispose();
    tf.dispose([x, ...probes]);
  });
});

describe('weight import', () => {
  it('strict import lists missing and unexpected keys and leaves the model untouched', () => {
    const model = build(18, 1 / 16, [32, 32]);
    const before = model.getLayer('backbone.body.conv1').getWeights()[0]!.dataSync().slice();
    // ResNet50 weights into a ResNet18: both directions of mismatch at once.
    let err: unknown;
    try {
      importResNetSafetensors(model, readBytes('resnet50_w32.safetensors'), { source: 'r50.safetensors' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightImportError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/shape mismatch|missing/);
    const after = model.getLayer('backbone.body.conv1').getWeights()[0]!.dataSync();
    expect(relativeMaxDiff(after, before)).toBe(0);
  });

  it('names missing and unexpected keys in strict mode, and reports them when not strict', () => {
    const model = build(18, 1 / 16, [32, 32]);
    const bytes = readBytes('resnet18_w16.safetensors');
    // One key renamed: one missing, one unexpected.
    const renamed = renameKey(bytes, 'layer2.0.conv1.weight', 'layer2.0.convX.weight');
    expect(() => importResNetSafetensors(model, renamed)).toThrow(
      /1 missing, 1 unexpected[\s\S]*missing: layer2\.0\.conv1\.weight[\s\S]*unexpected: layer2\.0\.convX\.weight/,
    );
    const report = importResNetSafetensors(model, renamed, { strict: false });
    expect(report.missing).toEqual(['layer2.0.conv1.weight']);
    expect(report.unexpected).toEqual(['layer2.0.convX.weight']);
  });
});

describe('leaks and serialisation', () => {
  it('forward passes leave numTensors flat', () => {
    const model = build(18, 1 / 16, [32, 32], { frozenBatchNorm: false });
    const x = tf.randomNormal([1, 32, 32, 3]);
    const run = (training: boolean) => tf.dispose(model.apply(x, { training }) as tf.Tensor[]);
    run(false);
    run(true);
    const n = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      run(false);
      run(true);
      tf.dispose(model.predict(x) as tf.Tensor[]);
    }
    expect(tf.memory().numTensors).toBe(n);
    x.dispose();
  });

  it('a model with FrozenBatchNorm survives a JSON round trip (registered class)', async () => {
    const model = build(18, 1 / 16, [32, 32]);
    const json = model.toJSON(null, false) as unknown as tf.serialization.ConfigDict;
    const copy = await tf.models.modelFromJSON({ modelTopology: json });
    models.push(copy);
    expect(copy.getLayer('backbone.body.layer1.0.bn1').getClassName()).toBe('FrozenBatchNorm');
    expect(copy.layers.length).toBe(model.layers.length);
  });
});

/** Rewrites one key in a safetensors header (same length names keep offsets valid). */
function renameKey(bytes: Uint8Array, from: string, to: string): Uint8Array {
  if (from.length !== to.length) throw new Error('renameKey needs equal lengths');
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n)).replace(`"${from}"`, `"${to}"`);
  const out = bytes.slice();
  out.set(new TextEncoder().encode(header), 8);
  return out;
}
