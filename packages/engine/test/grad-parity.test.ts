/**
 * Gradients of a small conv net (conv + inference-mode BN + ReLU, strided,
 * TF-'same' asymmetric padding, a biased 1x1 as FusedConv2D) against PyTorch
 * 1.13 (fixture from tooling/fixtures/engine_grad_fixture.py), with our kernels
 * on wasm and on cpu, and with the wasm fallback. Also: tf.memory() flat.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type EngineHandle, installEngineKernels, registerOrtKernels } from '../src/index.js';
import { maxAbs, maxAbsDiff, tf, useWasm } from './helpers.js';

interface Arr {
  shape: number[];
  data: number[];
}
interface Fixture {
  eps: number;
  layers: {
    name: string;
    stride: number;
    pads: [number, number, number, number];
    bn: boolean;
    bias: boolean;
  }[];
  x: Arr;
  R: Arr;
  params: Record<string, Arr>;
  out: Arr;
  loss: number;
  grads: Record<string, Arr>;
}

const fx = JSON.parse(
  readFileSync(fileURLToPath(new URL('./fixtures/engine_grad.json', import.meta.url)), 'utf8'),
) as Fixture;

const t = (a: Arr) => tf.tensor(a.data, a.shape);

/** The fixture's net; c3 uses TF 'same' (PyTorch side padded top/left 0, bottom/right 1). */
function forward(x: tf.Tensor4D, p: Record<string, tf.Tensor>): tf.Tensor4D {
  let y = x;
  for (const l of fx.layers) {
    const [top, bottom, left, right] = l.pads;
    const pad =
      l.name === 'c3'
        ? 'same'
        : ([
            [0, 0],
            [top, bottom],
            [left, right],
            [0, 0],
          ] as [[number, number], [number, number], [number, number], [number, number]]);
    const w = p[`${l.name}.w`] as tf.Tensor4D;
    if (l.bias) {
      y = tf.fused.conv2d({ x: y, filter: w, strides: l.stride, pad, bias: p[`${l.name}.b`] });
    } else {
      y = tf.conv2d(y, w, l.stride, pad);
    }
    if (l.bn) {
      const bn = (k: string) => p[`${l.name}.${k}`] as tf.Tensor1D;
      y = tf.relu(tf.batchNorm(y, bn('mean'), bn('var'), bn('beta'), bn('gamma'), fx.eps));
    }
  }
  return y;
}

function checkAgainstTorch(label: string) {
  const x = t(fx.x) as tf.Tensor4D;
  const R = t(fx.R);
  const params: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(fx.params)) params[k] = t(v);
  const names = Object.keys(fx.grads).filter((k) => k !== 'x');
  const lossFn = (...args: tf.Tensor[]) => {
    const p = { ...params };
    names.forEach((n, i) => {
      p[n] = args[i + 1]!;
    });
    return tf.sum(tf.mul(forward(args[0] as tf.Tensor4D, p), R));
  };
  const run = () => {
    const { value, grads } = tf.valueAndGrads(lossFn)([x, ...names.map((n) => params[n]!)]);
    const out = { loss: value.dataSync()[0]!, grads: grads.map((g) => g.dataSync().slice() as Float32Array) };
    tf.dispose([value, ...grads]);
    return out;
  };
  run(); // compiles sessions, creates kernels' lazily built state
  const before = tf.memory().numTensors;
  const r = run();
  run();
  expect(tf.memory().numTensors, `${label}: tensors leaked`).toBe(before);
  expect(r.loss).toBeCloseTo(fx.loss, 3);
  const report: string[] = [];
  ['x', ...names].forEach((n, i) => {
    const want = fx.grads[n]!.data;
    const d = maxAbsDiff(r.grads[i]!, want);
    report.push(`${n} ${d.toExponential(1)}`);
    expect(d, `${label}: grad ${n}`).toBeLessThanOrEqual(1e-4 * (1 + maxAbs(want)));
  });
  tf.dispose([x, R, ...Object.values(params)]);
  // BMC_ENGINE_REPORT=1 prints the max |diff| per gradient (for reports; the assertions above are the test).
  if (process.env.BMC_ENGINE_REPORT) console.info(`${label}: ${report.join(', ')}`);
  return report;
}

describe('gradients vs PyTorch 1.13 (small conv net, inference-mode BN)', () => {
  let handle: EngineHandle | undefined;
  beforeAll(useWasm);
  afterEach(() => {
    handle?.unregister();
    handle = undefined;
    tf.setBackend('wasm');
  });

  it.each(['nhwc', 'transpose', 'flipped', 'taps'] as const)(
    'onnxruntime kernels on wasm, layout %s',
    (layout) => {
      handle = registerOrtKernels({ backend: 'wasm', layout, threads: 2 });
      checkAgainstTorch(`wasm/${layout}`);
      const s = handle.stats()!;
      expect(s.delegated).toEqual({});
      expect(Object.keys(s.native).sort()).toEqual([
        'Conv2D',
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput',
        'FusedConv2D',
      ]);
    },
  );

  it('onnxruntime kernels on the cpu backend', () => {
    tf.setBackend('cpu');
    handle = registerOrtKernels({ backend: 'cpu', threads: 1 });
    checkAgainstTorch('cpu/ort');
    expect(handle.stats()!.native.Conv2DBackpropFilter).toBeGreaterThan(0);
  });

  it('pure-wasm fallback', () => {
    handle = installEngineKernels({ backend: 'wasm', prefer: 'wasm-fallback' });
    expect(handle?.path).toBe('wasm-fallback');
    checkAgainstTorch('wasm/fallback');
  });
});
