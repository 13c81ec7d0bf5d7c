/**
 * MLAS's NCHWc block size on this CPU, read off onnxruntime itself: `ReorderInput`
 * pads 4 channels up to one block (16 with AVX-512, 8 with AVX2). Where MLAS has no
 * NCHWc kernels the contrib ops are not registered and the session fails to load:
 * the answer is then 1 (no 'nchwc' form).
 */
import { NCHWC_DOMAIN } from './conv-graphs.js';
import { encodeModel } from './onnx-model.js';
import type { OrtNative } from './ort-binding.js';

let cached: number | undefined;

export function nchwcBlockSize(native: OrtNative): number {
  if (cached !== undefined) return cached;
  const bytes = encodeModel(
    {
      inputs: [{ name: 'x', shape: [1, 1, 1, 4] }],
      outputs: [{ name: 'y', shape: [1, -1, 1, 1] }],
      nodes: [
        {
          op: 'ReorderInput',
          domain: NCHWC_DOMAIN,
          inputs: ['x'],
          outputs: ['y'],
          attrs: { channels_last: { int: 1 } },
        },
      ],
    },
    'bmc_nchwc_probe',
  );
  const session = native.newSession();
  try {
    session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'disabled',
    });
    const out = session.run(
      { x: new native.Tensor('float32', new Float32Array(4), [1, 1, 1, 4]) },
      { y: null },
      {},
    );
    const block = Number(out.y?.dims[1]);
    cached = Number.isInteger(block) && block >= 4 ? block : 1;
  } catch {
    cached = 1;
  } finally {
    session.dispose();
  }
  return cached;
}
