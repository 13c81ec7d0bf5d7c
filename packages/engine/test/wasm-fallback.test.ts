/**
 * The pure-wasm Conv2DBackpropFilter (used when onnxruntime-node is missing)
 * against the cpu backend's kernel. Stride > 1 is the case that the
 * Conv3DBackpropFilterV2 shortcut gets wrong (a filter tap dropped), so it is
 * covered with even/odd sizes, anisotropic strides and asymmetric 'same' pads.
 */
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeEngine, type EngineHandle, installEngineKernels, type TfPad } from '../src/index.js';
import { maxAbs, maxAbsDiff, onBackend, randomArray, rng, tf, useWasm } from './helpers.js';

const CASES: { x: number[]; w: number[]; strides: [number, number]; pad: TfPad }[] = [
  { x: [2, 8, 8, 3], w: [3, 3, 3, 4], strides: [2, 2], pad: 'same' },
  { x: [2, 9, 9, 3], w: [3, 3, 3, 4], strides: [2, 2], pad: 'same' },
  { x: [1, 10, 7, 2], w: [3, 2, 2, 5], strides: [2, 1], pad: 'valid' },
  { x: [2, 11, 12, 4], w: [1, 1, 4, 3], strides: [2, 2], pad: 'valid' },
  {
    x: [1, 12, 12, 3],
    w: [7, 7, 3, 2],
    strides: [2, 2],
    pad: [
      [0, 0],
      [3, 3],
      [3, 3],
      [0, 0],
    ],
  },
  {
    x: [2, 6, 7, 3],
    w: [3, 3, 3, 3],
    strides: [1, 1],
    pad: [
      [0, 0],
      [0, 2],
      [1, 0],
      [0, 0],
    ],
  },
  { x: [1, 9, 8, 2], w: [5, 3, 2, 2], strides: [3, 2], pad: 'same' },
];

describe('pure-wasm Conv2DBackpropFilter (onnxruntime not used)', () => {
  let handle: EngineHandle | undefined;
  beforeAll(async () => {
    await useWasm();
    handle = installEngineKernels({ backend: 'wasm', prefer: 'wasm-fallback' });
  });
  afterAll(() => handle?.unregister());

  it('reports the active path', () => {
    expect(handle?.path).toBe('wasm-fallback');
    const d = describeEngine();
    expect(d.active).toEqual([{ backend: 'wasm', path: 'wasm-fallback', kernels: ['Conv2DBackpropFilter'] }]);
    expect(d.summary).toContain('pure-wasm Conv2DBackpropFilter');
  });

  it.each(CASES)('x$x w$w strides $strides pad $pad', (c) => {
    const info = tf.backend_util.computeConv2DInfo(
      c.x as [number, number, number, number],
      c.w as [number, number, number, number],
      c.strides,
      1,
      c.pad as 'same',
    );
    const r = rng(c.x[1]! * 17 + c.w[0]!);
    const x = randomArray(c.x, r);
    const dy = randomArray(info.outShape, r);
    const attrs = {
      strides: c.strides,
      pad: c.pad,
      dataFormat: 'NHWC',
      filterShape: c.w,
    } as unknown as NamedAttrMap;
    const run = (b: 'cpu' | 'wasm') =>
      onBackend(
        b,
        () =>
          tf
            .engine()
            .runKernel(
              'Conv2DBackpropFilter',
              { x: tf.tensor(x, c.x), dy: tf.tensor(dy, info.outShape) },
              attrs,
            ) as tf.Tensor,
      );
    const want = run('cpu');
    const got = run('wasm');
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-4 * (1 + maxAbs(want)));
  });

  it('makes tf.grads of a strided conv work on wasm, without leaking tensors', () => {
    const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 1);
    const w = tf.randomUniform([3, 3, 3, 4], -1, 1, 'float32', 2);
    const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.sum(tf.square(tf.conv2d(a, b, 2, 'same')));
    const step = () => {
      const [gx, gw] = tf.grads(f as never)([x, w]);
      const out = [gx!.dataSync().slice(), gw!.dataSync().slice()];
      tf.dispose([gx, gw]);
      return out;
    };
    step();
    const n0 = tf.memory().numTensors;
    const [, gw] = step();
    step();
    expect(tf.memory().numTensors).toBe(n0);
    const want = onBackend('cpu', () => {
      const xc = tf.tensor(x.dataSync(), x.shape);
      const wc = tf.tensor(w.dataSync(), w.shape);
      return tf.grads(f as never)([xc, wc])[1]!;
    });
    expect(maxAbsDiff(gw!, want)).toBeLessThanOrEqual(1e-4 * (1 + maxAbs(want)));
    tf.dispose([x, w]);
  });
});
