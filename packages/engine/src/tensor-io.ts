/**
 * Zero-copy access to a tfjs backend's float32 storage, so onnxruntime reads
 * inputs where the backend keeps them and writes its output straight into a
 * freshly allocated backend tensor.
 *
 * wasm: tensors live in the wasm heap; a view is only valid until the heap
 * grows, so a kernel allocates its output first and takes views after.
 * cpu: tensors are plain typed arrays in the backend's data map.
 */
import type { KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';

export interface TensorIo {
  /** Allocates a float32 tensor on the backend (contents undefined). */
  alloc(shape: number[]): TensorInfo;
  /** The tensor's float32 storage (a view for wasm: take it after the last `alloc`). */
  view(t: TensorInfo): Float32Array;
  /** Releases a tensor the kernel allocated for an intermediate result. */
  free(t: TensorInfo): void;
}

interface WasmLike extends KernelBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

interface CpuLike extends KernelBackend {
  makeTensorInfo(shape: number[], dtype: 'float32', values?: Float32Array): TensorInfo;
  data: { get(dataId: object): { values?: unknown } };
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export function wasmIo(backend: KernelBackend): TensorIo {
  const b = backend as WasmLike;
  return {
    alloc: (shape) => b.makeOutput(shape, 'float32'),
    view: (t) => b.typedArrayFromHeap(t),
    free: (t) => {
      b.disposeData(t.dataId);
    },
  };
}

export function cpuIo(backend: KernelBackend): TensorIo {
  const b = backend as CpuLike;
  return {
    alloc: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(size(shape))),
    view: (t) => {
      const v = b.data.get(t.dataId).values;
      if (v instanceof Float32Array) return v;
      // Tensors created from other dtypes or lazily: readSync materialises float32 values.
      return b.readSync(t.dataId) as Float32Array;
    },
    free: (t) => {
      b.disposeData(t.dataId);
    },
  };
}

export type EngineBackendName = 'wasm' | 'cpu';

export function ioFor(name: EngineBackendName, backend: KernelBackend): TensorIo {
  return name === 'wasm' ? wasmIo(backend) : cpuIo(backend);
}
