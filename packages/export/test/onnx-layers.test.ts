// Parity of every supported layer class: onnxruntime-node on the exported file vs
// tfjs (cpu backend) on the same random input, at two input sizes per model.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportOnnx, type OnnxExportResult, UnsupportedLayerError } from '../src/index.js';
import { checker, compareWithOrt, hasOnnxPython, initTf, randomizeWeights } from './helpers.js';

type S = tf.SymbolicTensor;
const L = tf.layers;
const ap = (layer: tf.layers.Layer, x: S | S[]) => layer.apply(x) as S;

/** An image input of unknown height and width. */
function image(channels = 3, name?: string): S {
  return tf.input({ shape: [null, null, channels] as unknown as number[], ...(name ? { name } : {}) });
}

/** A stand-in for @bmc/backbone's FrozenBatchNorm: same class name, weight names and arithmetic. */
class FrozenBatchNorm extends L.Layer {
  static className = 'FrozenBatchNorm';
  readonly epsilon = 1e-5;
  private vars: tf.LayerVariable[] = [];
  override build(shape: tf.Shape | tf.Shape[]): void {
    const c = (shape as tf.Shape)[(shape as tf.Shape).length - 1]!;
    this.vars = ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((n) =>
      this.addWeight(n, [c], 'float32', tf.initializers.ones(), undefined, false),
    );
    this.built = true;
  }
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      const [g, b, m, v] = this.vars.map((w) => w.read());
      const scale = tf.mul(g!, tf.rsqrt(tf.add(v!, this.epsilon)));
      return tf.add(tf.mul(x, scale), tf.sub(b!, tf.mul(m!, scale)));
    });
  }
  override getConfig() {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}
tf.serialization.registerClass(FrozenBatchNorm);

interface Case {
  name: string;
  build: () => tf.LayersModel;
  sizes: Array<{ n: number; h: number; w: number }>;
  check?: (r: OnnxExportResult) => void;
}

const SIZES = [
  { n: 2, h: 32, w: 32 },
  { n: 1, h: 64, w: 96 },
];
const ODD = [
  { n: 1, h: 17, w: 23 },
  { n: 2, h: 30, w: 9 },
];

const cases: Case[] = [
  {
    name: 'Conv2D stride 2 same (TF asymmetric pad) + BatchNormalization folded + ReLU',
    build: () => {
      const x = image();
      let y = ap(L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false }), x);
      y = ap(L.batchNormalization(), y);
      y = ap(L.reLU(), y);
      return tf.model({ inputs: x, outputs: y });
    },
    sizes: [...SIZES, ...ODD],
    check: (r) => {
      expect(r.summary.foldedBatchNorms).toBe(1);
      expect(r.summary.opCounts.BatchNormalization).toBeUndefined();
    },
  },
  {
    name: 'Conv2D variants: dilation, valid, 1x1 stride 2, even kernel stride 2, 3x1 kernel, bias',
    build: () => {
      const x = image();
      let y = ap(L.conv2d({ filters: 6, kernelSize: 3, dilationRate: 2, padding: 'same' }), x);
      y = ap(L.conv2d({ filters: 5, kernelSize: 5, padding: 'valid', activation: 'relu' }), y);
      y = ap(L.conv2d({ filters: 7, kernelSize: 1, strides: 2, padding: 'same' }), y);
      y = ap(L.conv2d({ filters: 4, kernelSize: 4, strides: 2, padding: 'same', activation: 'sigmoid' }), y);
      y = ap(L.conv2d({ filters: 4, kernelSize: [3, 1], padding: 'same', useBias: false }), y);
      y = ap(
        L.conv2d({ filters: 3, kernelSize: 2, strides: [1, 2], padding: 'same', activation: 'tanh' }),
        y,
      );
      return tf.model({ inputs: x, outputs: y });
    },
    sizes: [...SIZES, ...ODD],
  },
  {
    name: 'BatchNormalization not folded (conv output has two consumers; BN after activation; BN on Dense)',
    build: () => {
      const x = image();
      const c = ap(L.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }), x);
      const b = ap(L.batchNormalization({ epsilon: 1e-5 }), c);
      const s = ap(L.add(), [b, c]);
      const r = ap(L.conv2d({ filters: 4, kernelSize: 1, activation: 'relu' }), s);
      const b2 = ap(L.batchNormalization({ scale: false, center: false }), r);
      const v = ap(L.globalAveragePooling2d({}), b2);
      const d = ap(L.dense({ units: 3 }), v);
      const out = ap(L.batchNormalization(), d);
      return tf.model({ inputs: x, outputs: [b2, out] });
    },
    sizes: SIZES,
    check: (r) => {
      expect(r.summary.foldedBatchNorms).toBe(0);
      expect(r.summary.opCounts.BatchNormalization).toBe(3);
    },
  },
  {
    name: 'FrozenBatchNorm (custom class) folded, and unfolded when it follows ReLU',
    build: () => {
      const x = image();
      let y = ap(L.conv2d({ filters: 6, kernelSize: 3, padding: 'same', useBias: false }), x);
      y = ap(new FrozenBatchNorm({}), y);
      y = ap(L.activation({ activation: 'relu' }), y);
      y = ap(new FrozenBatchNorm({}), y);
      return tf.model({ inputs: x, outputs: y });
    },
    sizes: SIZES,
    check: (r) => {
      expect(r.summary.foldedBatchNorms).toBe(1);
      expect(r.summary.opCounts.BatchNormalization).toBe(1);
    },
  },
  {
    name: 'Activations: relu, sigmoid, linear, tanh, relu6, softmax, elu, swish, LeakyReLU, ReLU(maxValue), Softmax',
    build: () => {
      const x = image();
      const c = ap(L.conv2d({ filters: 4, kernelSize: 1 }), x);
      const acts = [
        'relu',
        'sigmoid',
        'linear',
        'tanh',
        'relu6',
        'softmax',
        'elu',
        'swish',
        'softplus',
        'hardSigmoid',
        'logSoftmax',
        'selu',
        'softsign',
        'mish',
      ];
      const branches = acts.map((a) => ap(L.activation({ activation: a as 'relu' }), c));
      branches.push(
        ap(L.leakyReLU({ alpha: 0.1 }), c),
        ap(L.reLU({ maxValue: 0.5 }), c),
        ap(L.softmax({ axis: -1 }), c),
      );
      return tf.model({ inputs: x, outputs: ap(L.concatenate(), branches) });
    },
    sizes: SIZES,
  },
  {
    name: 'SE attention: GAP -> Dense relu -> Dense sigmoid -> Reshape [1,1,C] -> Multiply (broadcast) + Add',
    build: () => {
      const x = image();
      const feat = ap(L.conv2d({ filters: 8, kernelSize: 3, padding: 'same' }), x);
      const other = ap(L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same' }), x);
      const z = ap(L.globalAveragePooling2d({}), other);
      const h = ap(L.dense({ units: 2, activation: 'relu' }), z);
      const w = ap(L.dense({ units: 8, activation: 'sigmoid' }), h);
      const w4 = ap(L.reshape({ targetShape: [1, 1, 8] }), w);
      const att = ap(L.multiply(), [feat, w4]);
      const att2 = ap(L.multiply(), [w4, feat]);
      // Rank 2 against rank 4: Keras expands [N, C] to [N, 1, 1, C].
      const att3 = ap(L.multiply(), [feat, w]);
      return tf.model({ inputs: x, outputs: ap(L.add(), [att, att2, att3, feat]) });
    },
    sizes: SIZES,
  },
  {
    name: 'FPN top-down: UpSampling2D nearest and bilinear, Add, Maximum, Minimum, Average',
    build: () => {
      const x = image();
      const c3 = ap(L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }), x);
      const c4 = ap(L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }), c3);
      const up = ap(L.upSampling2d({ size: [2, 2] }), c4);
      const upb = ap(L.upSampling2d({ size: [2, 2], interpolation: 'bilinear' }), c4);
      const p3 = ap(L.add(), [c3, up]);
      const m = ap(L.maximum(), [upb, c3]);
      const n = ap(L.minimum(), [m, p3, up]);
      const up3 = ap(L.upSampling2d({ size: [1, 3] }), ap(L.average(), [m, n, c3]));
      return tf.model({ inputs: x, outputs: [p3, up3] });
    },
    sizes: SIZES,
  },
  {
    name: 'Head flattening: per-level conv -> Reshape [-1, K] -> Concatenate axis 1 keeps (level, y, x, anchor) order',
    build: () => {
      const x = image();
      const p1 = ap(L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }), x);
      const p2 = ap(L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same' }), p1);
      // A shared head conv over both levels (one layer, two calls), 3 anchors x 2 classes.
      const head = L.conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'cls_head' });
      const flat = [p1, p2].map((p) => ap(L.reshape({ targetShape: [-1, 2] }), ap(head, p)));
      const box = L.conv2d({ filters: 12, kernelSize: 3, padding: 'same' });
      const boxes = [p1, p2].map((p) => ap(L.reshape({ targetShape: [-1, 4] }), ap(box, p)));
      return tf.model({
        inputs: x,
        outputs: [ap(L.concatenate({ axis: 1 }), flat), ap(L.concatenate({ axis: 1 }), boxes)],
      });
    },
    sizes: SIZES,
    check: (r) => {
      // Shared layers keep one copy of their weights.
      expect(r.summary.parameters).toBe(
        3 * 3 * 3 * 4 + 4 + (3 * 3 * 4 * 4 + 4) + (9 * 4 * 6 + 6) + (9 * 4 * 12 + 12),
      );
    },
  },
  {
    name: 'Stem and misc: ZeroPadding2D asymmetric, MaxPooling2D same/valid, AveragePooling2D same, Cropping2D',
    build: () => {
      const x = image();
      let y = ap(
        L.zeroPadding2d({
          padding: [
            [1, 2],
            [0, 3],
          ],
        }),
        x,
      );
      y = ap(L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'valid' }), y);
      const a = ap(L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), y);
      const b = ap(L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }), y);
      const c = ap(L.maxPooling2d({ poolSize: 2, padding: 'valid' }), b);
      const d = ap(L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }), b);
      const e = ap(
        L.cropping2D({
          cropping: [
            [1, 0],
            [0, 2],
          ],
        }),
        b,
      );
      return tf.model({ inputs: x, outputs: [a, c, d, e] });
    },
    sizes: [...SIZES, ...ODD],
  },
  {
    name: 'Rank changes: Flatten, Dense on rank-4 and rank-3 input, Permute, GlobalMaxPooling2D, DepthwiseConv2D + BN fold',
    build: () => {
      const x = tf.input({ shape: [12, 10, 3] });
      const dw = ap(
        L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: false }),
        x,
      );
      const bn = ap(L.batchNormalization(), dw);
      const pix = ap(L.dense({ units: 5, activation: 'relu' }), bn);
      const perm = ap(L.permute({ dims: [2, 1, 3] }), pix);
      const r3 = ap(L.reshape({ targetShape: [-1, 5] }), perm);
      const d3dense = ap(L.dense({ units: 2 }), r3);
      // Rank 2 against rank 3: [N, K] expands to [N, 1, K].
      const d3 = ap(L.multiply(), [
        d3dense,
        ap(L.dense({ units: 2 }), ap(L.globalAveragePooling2d({}), pix)),
      ]);
      const flat = ap(L.flatten(), perm);
      const fc = ap(L.dense({ units: 4 }), flat);
      const gmp = ap(L.globalMaxPooling2d({}), pix);
      const p2 = ap(L.permute({ dims: [3, 1, 2] }), pix);
      return tf.model({ inputs: x, outputs: [d3, fc, gmp, ap(L.softmax({ axis: -1 }), p2)] });
    },
    sizes: [
      { n: 2, h: 12, w: 10 },
      { n: 3, h: 12, w: 10 },
    ],
    check: (r) => expect(r.summary.foldedBatchNorms).toBe(1),
  },
  {
    name: 'Transformer parts: LayerNormalization (rank 2, 3, 4), Dot (axes [2,2], [2,1], [1,1]), Dense gelu, Rescaling, GlobalAverage/MaxPooling1D',
    build: () => {
      const x = tf.input({ shape: [8, 8, 3] });
      const patches = ap(L.conv2d({ filters: 8, kernelSize: 2, strides: 2 }), x);
      const ln4 = ap(L.layerNormalization({ epsilon: 1e-5 }), patches);
      const tokens = ap(L.reshape({ targetShape: [16, 8] }), ln4);
      const normed = ap(L.layerNormalization({ axis: -1 }), tokens);
      const q = ap(L.rescaling({ scale: 0.5 }), ap(L.dense({ units: 4 }), normed));
      const k = ap(L.dense({ units: 4 }), normed);
      const v = ap(L.dense({ units: 6, activation: 'gelu' }), normed);
      const attn = ap(L.softmax({ axis: -1 }), ap(L.dot({ axes: [2, 2] }), [q, k]));
      const mixed = ap(L.dot({ axes: [2, 1] }), [attn, v]);
      const gram = ap(L.dot({ axes: 1 }), [mixed, normed]);
      const pooled = ap(L.globalAveragePooling1d({}), mixed);
      return tf.model({
        inputs: x,
        outputs: [
          ap(L.layerNormalization({ center: false }), pooled),
          gram,
          ap(L.globalMaxPooling1d({}), normed),
          ln4,
        ],
      });
    },
    sizes: [
      { n: 2, h: 8, w: 8 },
      { n: 3, h: 8, w: 8 },
    ],
  },
  {
    name: 'Nested functional model used twice (shared sub-network) + Dropout identity',
    build: () => {
      const inner = (() => {
        const i = image(4);
        const c = ap(L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' }), i);
        return tf.model({ inputs: i, outputs: ap(L.add(), [c, i]), name: 'block' });
      })();
      const x = image();
      const s = ap(L.conv2d({ filters: 4, kernelSize: 1 }), x);
      const a = ap(inner as unknown as tf.layers.Layer, s);
      const b = ap(inner as unknown as tf.layers.Layer, ap(L.dropout({ rate: 0.5 }), a));
      return tf.model({ inputs: x, outputs: b });
    },
    sizes: SIZES,
  },
];

const exported: Array<{ name: string; bytes: Uint8Array }> = [];

describe('ONNX export parity with onnxruntime-node', () => {
  beforeAll(initTf);

  for (const [k, c] of cases.entries()) {
    it(c.name, async () => {
      const model = c.build();
      randomizeWeights(model, 100 * (k + 1));
      const before = tf.memory().numTensors;
      const res = exportOnnx(model);
      expect(tf.memory().numTensors).toBe(before);
      c.check?.(res);
      exported.push({ name: `case${k}`, bytes: res.bytes });
      let worst = 0;
      for (const [j, size] of c.sizes.entries()) {
        const parity = await compareWithOrt(model, res.bytes, size, 7 + j);
        worst = Math.max(worst, ...parity.map((p) => p.relative));
        for (const p of parity) {
          expect(p.range, `${p.name} has a non-trivial range`).toBeGreaterThan(0);
          expect(p.relative, `${p.name} at ${size.h}x${size.w}: max diff ${p.maxAbsDiff}`).toBeLessThan(1e-4);
        }
      }
      console.log(
        `parity ${c.name.split(':')[0]}: worst max|diff|/range ${worst.toExponential(2)} over ${c.sizes.length} sizes`,
      );
      model.dispose();
    });
  }
});

describe.skipIf(!hasOnnxPython)('onnx checker (python3-onnx)', () => {
  it('every file exported above passes onnx.checker full_check and strict shape inference', () => {
    expect(exported.length).toBe(cases.length);
    const dir = mkdtempSync(join(tmpdir(), 'bmc-export-check-'));
    try {
      const files = exported.map((e) => {
        const f = join(dir, `${e.name}.onnx`);
        writeFileSync(f, e.bytes);
        return f;
      });
      const out = execFileSync('/usr/bin/python3', [checker, ...files], { encoding: 'utf8' });
      expect(out.match(/: OK \(onnx/g)?.length).toBe(files.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ONNX export errors', () => {
  beforeAll(initTf);

  it('an unsupported layer is an error naming the layer and its class', () => {
    const x = image();
    const y = ap(L.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 2, name: 'up_deconv' }), x);
    const model = tf.model({ inputs: x, outputs: y });
    expect(() => exportOnnx(model)).toThrow(UnsupportedLayerError);
    expect(() => exportOnnx(model)).toThrow(/layer 'up_deconv' of class 'Conv2DTranspose' is not supported/);
    model.dispose();
  });

  it('BatchNormalization over a non-channel axis is refused, not silently mis-exported', () => {
    const x = tf.input({ shape: [8, 8, 3] });
    const c = ap(L.conv2d({ filters: 2, kernelSize: 1 }), x);
    const y = ap(L.batchNormalization({ axis: 1, name: 'bn_h' }), ap(L.reLU(), c));
    const model = tf.model({ inputs: x, outputs: y });
    expect(() => exportOnnx(model)).toThrow(/layer 'bn_h' \(BatchNormalization\) normalises axis 1/);
    model.dispose();
  });

  it('LayerNormalization over a non-last axis and a normalised Dot are refused', () => {
    const x = tf.input({ shape: [4, 6] });
    const ln = tf.model({ inputs: x, outputs: ap(L.layerNormalization({ axis: 1, name: 'ln_t' }), x) });
    expect(() => exportOnnx(ln)).toThrow(/layer 'ln_t' \(LayerNormalization\) normalises axis 1/);
    const cos = tf.model({
      inputs: x,
      outputs: ap(L.dot({ axes: 2, normalize: true, name: 'cos' }), [x, x]),
    });
    expect(() => exportOnnx(cos)).toThrow(/layer 'cos' \(Dot\) normalize: true/);
    ln.dispose();
    cos.dispose();
  });

  it('an unsupported activation names the layer', () => {
    const x = image();
    const y = ap(
      L.conv2d({ filters: 2, kernelSize: 1, activation: 'gelu_new' as 'relu', name: 'odd_act' }),
      x,
    );
    const model = tf.model({ inputs: x, outputs: y });
    expect(() => exportOnnx(model)).toThrow(/layer 'odd_act' \(Conv2D\) uses activation 'gelu_new'/);
    model.dispose();
  });
});
