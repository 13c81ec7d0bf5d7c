/**
 * tfjs-backend-wasm 4.22 kernels that copy or transpose where a training step needs neither:
 * - `Identity` copies its input; tfjs-core runs it on every tensor an op saves for its gradient
 *   (`saveTensorsForBackwardMode` clones), so each convolution's input was copied once more
 *   in the forward pass (40 copies of a 16 MB map per thesis micro-batch). tfjs tensors are
 *   immutable, so the output can share the input's memory, as wasm's own `Reshape` and the cpu
 *   backend's `Identity` do (reference counted).
 * - `Cast` to the dtype it already has copies too (the gradient of that clone).
 * - `Sum` over the leading axes (a bias gradient: `[N, H, W, C]` summed over N, H, W) first
 *   transposes the whole tensor so that the reduced axes are innermost; summing rows into
 *   column accumulators needs no transpose, adds in the same order (bit-identical) and reads
 *   the input once.
 * Everything else goes to the kernel registered before.
 */
import * as tf from '@tensorflow/tfjs-core';

interface WasmBackendLike {
  incRef(dataId: object): void;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** Kernel functions of ours (never delegation targets; marks an existing registration). */
const copyFree = new WeakSet<object>();

type Args = { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: tf.KernelBackend };

const shared = (x: tf.TensorInfo, backend: tf.KernelBackend): tf.TensorInfo => {
  (backend as unknown as WasmBackendLike).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/** The reduced axes when they are exactly the leading `k` axes (0 < k < rank), else 0. */
function leadingAxes(axis: number | number[] | null | undefined, rank: number): number {
  if (axis === null || axis === undefined) return 0;
  const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort(
    (a, b) => a - b,
  );
  if (axes.length === 0 || axes.length >= rank) return 0;
  return axes.every((a, i) => a === i) ? axes.length : 0;
}

/**
 * Column sums of `x` seen as `[rows, cols]`, accumulated in float32 row by row (wasm's order);
 * four columns per iteration (measured 1.6x faster in V8 than one).
 */
function sumRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  out.fill(0);
  const cols4 = cols - (cols % 4);
  let i = 0;
  for (let r = 0; r < rows; r++) {
    let c = 0;
    for (; c < cols4; c += 4, i += 4) {
      out[c]! += x[i]!;
      out[c + 1]! += x[i + 1]!;
      out[c + 2]! += x[i + 2]!;
      out[c + 3]! += x[i + 3]!;
    }
    for (; c < cols; c++, i++) out[c]! += x[i]!;
  }
}

/**
 * Registers the three kernels above on 'wasm' (idempotent); returns a function that puts the
 * previous ones back.
 */
export function registerCopyFreeWasmKernels(): () => void {
  const names = ['Identity', 'Cast', 'Sum'] as const;
  const previous = names.map((n) => tf.getKernel(n, 'wasm'));
  if (previous.some((k) => k === undefined)) {
    throw new Error("@bmc/engine: wasm kernels missing: import '@tensorflow/tfjs-backend-wasm' first");
  }
  if (previous.some((k) => copyFree.has(k!.kernelFunc))) return () => {};
  const [identity, cast, sum] = previous as tf.KernelConfig[];
  const configs: tf.KernelConfig[] = [
    {
      kernelName: 'Identity',
      backendName: 'wasm',
      kernelFunc: (a) => {
        const { inputs, backend } = a as Args;
        const x = inputs.x!;
        return x.dtype === 'string' ? identity!.kernelFunc(a) : shared(x, backend);
      },
    },
    {
      kernelName: 'Cast',
      backendName: 'wasm',
      kernelFunc: (a) => {
        const { inputs, attrs, backend } = a as Args;
        const x = inputs.x!;
        return x.dtype !== 'string' && x.dtype === attrs?.dtype ? shared(x, backend) : cast!.kernelFunc(a);
      },
    },
    {
      kernelName: 'Sum',
      backendName: 'wasm',
      kernelFunc: (a) => {
        const { inputs, attrs, backend } = a as Args;
        const x = inputs.x!;
        const k = x.dtype === 'float32' ? leadingAxes(attrs?.axis as number | number[], x.shape.length) : 0;
        const size = x.shape.reduce((p, d) => p * d, 1);
        if (k === 0 || size === 0) return sum!.kernelFunc(a);
        const rows = x.shape.slice(0, k).reduce((p, d) => p * d, 1);
        const kept = x.shape.slice(k);
        const outShape = attrs?.keepDims ? [...x.shape.slice(0, k).map(() => 1), ...kept] : kept;
        const b = backend as unknown as WasmBackendLike;
        const out = b.makeOutput(outShape, 'float32');
        // Views after the output's allocation (a growing wasm heap detaches older ones).
        sumRows(
          b.typedArrayFromHeap(x) as Float32Array,
          rows,
          size / rows,
          b.typedArrayFromHeap(out) as Float32Array,
        );
        return out;
      },
    },
  ];
  for (const c of configs) copyFree.add(c.kernelFunc);
  for (const c of configs) {
    tf.unregisterKernel(c.kernelName, 'wasm');
    tf.registerKernel(c);
  }
  return () => {
    names.forEach((n, i) => {
      if (copyFree.has(tf.getKernel(n, 'wasm')?.kernelFunc as object)) {
        tf.unregisterKernel(n, 'wasm');
        tf.registerKernel(previous[i]!);
      }
    });
  };
}
