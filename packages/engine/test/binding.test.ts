/**
 * The internal onnxruntime-node API this package calls (dist/binding.js's
 * `binding.InferenceSession` with a synchronous `run` that writes into
 * preallocated outputs). A version bump that changes any of it must fail here.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { checkBindingShape, encodeModel, loadOrtNative, ORT_VERSION } from '../src/index.js';

const require = createRequire(import.meta.url);

describe('onnxruntime-node internal binding', () => {
  it('is the pinned version, with the expected module shape', () => {
    const pkg = require('onnxruntime-node/package.json') as { version: string };
    expect(pkg.version).toBe(ORT_VERSION);
    expect(ORT_VERSION).toBe('1.30.0');
    const mod = require('onnxruntime-node/dist/binding');
    expect(() => checkBindingShape(mod)).not.toThrow();
    expect(Object.keys(mod.binding).sort()).toEqual([
      'InferenceSession',
      'initOrtOnce',
      'listSupportedBackends',
    ]);
    const proto = Object.getOwnPropertyNames(mod.binding.InferenceSession.prototype);
    for (const m of ['loadModel', 'run', 'dispose', 'inputMetadata', 'outputMetadata'])
      expect(proto).toContain(m);
  });

  it('rejects a changed shape with a message naming what is missing', () => {
    expect(() => checkBindingShape({ binding: {}, initOrt: () => {} })).toThrow(
      /binding.InferenceSession missing/,
    );
    const Fake = function Fake() {};
    expect(() =>
      checkBindingShape({
        binding: { InferenceSession: Fake, listSupportedBackends: () => [] },
        initOrt: () => {},
      }),
    ).toThrow(/prototype.run missing/);
  });

  it('loads the CPU binary and runs a session synchronously into a preallocated output', () => {
    const ort = loadOrtNative();
    expect(ort.listSupportedBackends().map((b) => b.name)).toContain('cpu');
    // y = x + b, 1x3: hand-computed result [1+10, 2+20, 3+30].
    const bytes = encodeModel({
      inputs: [
        { name: 'x', shape: [1, 3] },
        { name: 'b', shape: [1, 3] },
      ],
      outputs: [{ name: 'y', shape: [1, 3] }],
      nodes: [{ op: 'Add', inputs: ['x', 'b'], outputs: ['y'] }],
    });
    const s = ort.newSession();
    s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, { intraOpNumThreads: 1 });
    expect(s.inputMetadata.map((m) => [m.name, m.shape, m.type])).toEqual([
      ['x', [1, 3], 1],
      ['b', [1, 3], 1],
    ]);
    // Inputs may be views into a larger buffer (the wasm heap): offset 2 here.
    const heap = new Float32Array([9, 9, 1, 2, 3, 10, 20, 30]);
    const out = new Float32Array(3);
    const result = s.run(
      {
        x: new ort.Tensor('float32', heap.subarray(2, 5), [1, 3]),
        b: new ort.Tensor('float32', heap.subarray(5, 8), [1, 3]),
      },
      { y: new ort.Tensor('float32', out, [1, 3]) },
      {},
    );
    expect(result).not.toBeInstanceOf(Promise);
    expect(Array.from(out)).toEqual([11, 22, 33]);
    s.dispose();
  });
});
