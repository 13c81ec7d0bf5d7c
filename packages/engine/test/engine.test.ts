/** Registration lifecycle and what describeEngine() reports (for `bmc doctor`). */
import { getKernel } from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { createOrtKernels, describeEngine, installEngineKernels, registerOrtKernels } from '../src/index.js';
import { tf, useWasm } from './helpers.js';

describe('engine registration', () => {
  beforeAll(useWasm);

  it('installs onnxruntime kernels when onnxruntime-node loads, and reports them', () => {
    const originalConv = getKernel('Conv2D', 'wasm');
    expect(getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined(); // wasm ships none
    const h = installEngineKernels({ backend: 'wasm', threads: 2 })!;
    expect(h.path).toBe('onnxruntime');
    const d = describeEngine();
    expect(d.onnxruntime).toMatchObject({ available: true, version: '1.30.0' });
    expect(d.active).toHaveLength(1);
    expect(d.active[0]).toMatchObject({ backend: 'wasm', path: 'onnxruntime', threads: 2 });
    expect(d.active[0]!.kernels).toEqual([
      'Conv2D',
      'FusedConv2D',
      'Conv2DBackpropInput',
      'Conv2DBackpropFilter',
    ]);
    expect(d.summary).toBe('wasm: convolutions on onnxruntime-node 1.30.0 (2 threads)');

    const y = tf.conv2d(
      tf.ones([1, 4, 4, 1]) as tf.Tensor4D,
      tf.ones([3, 3, 1, 1]) as tf.Tensor4D,
      1,
      'same',
    );
    // Hand-computed: a 3x3 box sum of ones with zero padding: corner 4, edge 6, centre 9.
    expect(Array.from(y.dataSync().slice(0, 4))).toEqual([4, 6, 6, 4]);
    y.dispose();
    expect(describeEngine().active[0]!.stats).toMatchObject({ sessions: 1, runs: 1 });

    h.unregister();
    expect(getKernel('Conv2D', 'wasm')).toBe(originalConv);
    expect(getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(describeEngine().active).toEqual([]);
    expect(describeEngine().summary).toMatch(
      /^no engine kernels installed \(onnxruntime-node 1.30.0 available\)/,
    );
  });

  it('replaces an earlier registration for the same backend', () => {
    const original = getKernel('Conv2D', 'wasm');
    const a = registerOrtKernels({ backend: 'wasm', layout: 'transpose', threads: 1 });
    const b = registerOrtKernels({ backend: 'wasm', layout: 'nhwc', threads: 1 });
    expect(describeEngine().active).toHaveLength(1);
    expect(describeEngine().active[0]!.layout).toEqual({
      forward: 'nhwc',
      backpropInput: 'nhwc',
      backpropFilter: 'nhwc',
    });
    a.unregister(); // already replaced: a no-op
    expect(getKernel('Conv2D', 'wasm')).not.toBe(original);
    b.unregister();
    expect(getKernel('Conv2D', 'wasm')).toBe(original);
  });

  it("delegates to the backend's own kernel even while ours are registered (no recursion)", () => {
    tf.setBackend('cpu');
    const h = registerOrtKernels({ backend: 'cpu', threads: 1 });
    const set = createOrtKernels({ backend: 'cpu', threads: 1 });
    const conv = set.configs.find((c) => c.kernelName === 'Conv2D')!;
    const x = tf.ones([1, 1, 3, 3]);
    const w = tf.ones([3, 3, 1, 1]);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NCHW', dilations: 1 };
    const out = conv.kernelFunc({
      inputs: { x, filter: w },
      attrs,
      backend: tf.backend(),
    } as never) as tf.TensorInfo;
    // NCHW 3x3 box sum of ones, zero-padded: centre 9.
    const values = tf.backend().readSync(out.dataId) as Float32Array;
    expect(values[4]).toBe(9);
    expect(set.stats().delegated).toEqual({ Conv2D: 1 });
    tf.backend().disposeData(out.dataId);
    tf.dispose([x, w]);
    set.dispose();
    h.unregister();
    tf.setBackend('wasm');
  });

  it('rejects bad options clearly', () => {
    expect(() => registerOrtKernels({ backend: 'webgl' as never })).toThrow(
      /backend must be 'wasm' or 'cpu'/,
    );
    expect(() => registerOrtKernels({ backend: 'wasm', threads: 0 })).toThrow(
      /threads must be a positive integer/,
    );
  });
});

describe('session cache', () => {
  beforeAll(useWasm);

  it('keeps at most maxSessions, releasing the least recently used, and stays correct', () => {
    const h = registerOrtKernels({ backend: 'wasm', threads: 1, maxSessions: 2 });
    const w = tf.ones([3, 3, 1, 1]) as tf.Tensor4D;
    const boxSumCorner = (size: number) => {
      const y = tf.conv2d(tf.ones([1, size, size, 1]) as tf.Tensor4D, w, 1, 'same');
      const v = y.dataSync()[0];
      tf.dispose(y);
      return v;
    };
    // Hand-computed: the top-left output of a zero-padded 3x3 box sum of ones is 4, for any size >= 2.
    expect([5, 6, 7, 5, 6].map(boxSumCorner)).toEqual([4, 4, 4, 4, 4]);
    const s = h.stats()!;
    expect(s.sessions).toBe(2);
    expect(s.evictions).toBe(3); // 5, 6 fill; 7 evicts 5; 5 evicts 6; 6 evicts 7
    h.unregister();
    w.dispose();
  });
});

describe('defaults', () => {
  it("chooses the layout per call ('auto') unless told otherwise", async () => {
    await useWasm();
    const h = registerOrtKernels({ backend: 'wasm', threads: 1 });
    expect(describeEngine().active[0]!.layout).toEqual({
      forward: 'auto',
      backpropInput: 'auto',
      backpropFilter: 'auto',
    });
    h.unregister();
  });
});
