import * as tf from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array;
}

/**
 * Kernels tfjs-backend-wasm 4.22 lacks but detector training needs.
 * `UnsortedSegmentSum` is the gradient of `tf.gather`, which the losses use to
 * pick the positive anchors' outputs. A plain loop: the segments are the few
 * hundred positives of a batch, not a hot path.
 */
export function registerMissingWasmKernels(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
      const numSegments = (attrs as { numSegments: number }).numSegments;
      const b = backend as unknown as WasmBackendLike;
      const values = b.readSync(x.dataId);
      const ids = b.readSync(segmentIds.dataId);
      const rest = x.shape.slice(segmentIds.shape.length);
      const inner = rest.reduce((p, d) => p * d, 1);
      const out = b.makeOutput([numSegments, ...rest], x.dtype);
      const o = b.typedArrayFromHeap(out);
      o.fill(0);
      for (let i = 0; i < ids.length; i++) {
        const s = ids[i]!;
        if (s < 0 || s >= numSegments) continue; // TensorFlow drops out-of-range ids
        for (let j = 0; j < inner; j++) o[s * inner + j]! += values[i * inner + j]!;
      }
      return out;
    },
  });
}
