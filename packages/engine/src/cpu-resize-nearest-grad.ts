import * as tf from '@tensorflow/tfjs-core';

interface CpuBackendLike {
  data: { get(dataId: object): { values: ArrayLike<number> } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

interface ResizeAttrs {
  alignCorners: boolean;
  halfPixelCenters?: boolean;
}

/** Source index the forward kernel reads for output index `i` (tfjs-backend-cpu's ResizeNearestNeighbor rule). */
function nearestSource(i: number, inSize: number, outSize: number, attrs: ResizeAttrs): number {
  const corners = attrs.alignCorners && outSize > 1;
  const ratio = (corners ? inSize - 1 : inSize) / (corners ? outSize - 1 : outSize);
  const frac = attrs.halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
  const nearest = Math.min(inSize - 1, attrs.alignCorners ? Math.round(frac) : Math.floor(frac));
  return attrs.halfPixelCenters ? Math.max(0, nearest) : nearest;
}

/**
 * tfjs-backend-cpu 4.22's ResizeNearestNeighborGrad offsets `dy` by the *input's* batch stride, so every
 * image after the first reads the wrong gradient (max error ~7 on unit-normal data at batch 3; batch 1
 * is right). The FPN's top-down upsampling goes through it, so on the cpu backend a batch larger than
 * one trains the backbone and lateral convs on wrong gradients. This replacement scatters each output
 * gradient onto the pixel the forward pass read, so it agrees with the forward kernel by construction.
 * tfjs-backend-wasm's kernel is correct and is left alone.
 */
export function fixCpuResizeNearestNeighborGrad(): void {
  const existing = tf.getKernel('ResizeNearestNeighborGrad', 'cpu');
  if (existing?.kernelFunc === resizeNearestNeighborGrad) return;
  if (existing) tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
  tf.registerKernel({
    kernelName: 'ResizeNearestNeighborGrad',
    backendName: 'cpu',
    kernelFunc: resizeNearestNeighborGrad,
  });
}

function resizeNearestNeighborGrad({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { images, dy } = inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as ResizeAttrs;
  const b = backend as unknown as CpuBackendLike;
  const [batch, inH, inW, depth] = images.shape as [number, number, number, number];
  const [, outH, outW] = dy.shape as [number, number, number, number];
  const g = b.data.get(dy.dataId).values;
  const out = new Float32Array(batch * inH * inW * depth);
  const rows = Array.from({ length: outH }, (_, r) => nearestSource(r, inH, outH, a));
  const cols = Array.from({ length: outW }, (_, c) => nearestSource(c, inW, outW, a));
  let k = 0;
  for (let n = 0; n < batch; n++) {
    for (let r = 0; r < outH; r++) {
      const rowBase = (n * inH + rows[r]!) * inW;
      for (let c = 0; c < outW; c++) {
        const o = (rowBase + cols[c]!) * depth;
        for (let d = 0; d < depth; d++) out[o + d]! += g[k++]!;
      }
    }
  }
  return b.makeTensorInfo(images.shape, images.dtype, out);
}
