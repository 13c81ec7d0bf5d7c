/**
 * tfjs kernels for the convolution family that run on onnxruntime-node (MLAS,
 * AVX2/AVX-512 as the CPU has, several threads) while tfjs keeps autograd:
 * the gradient functions of Conv2D/FusedConv2D call the Conv2DBackpropInput
 * and Conv2DBackpropFilter kernels, which are replaced here too.
 *
 * Anything a kernel does not handle natively (NCHW data format, non-float32,
 * PReLU, odd bias shapes, empty tensors) goes to the kernel that was
 * registered before, so registering never removes functionality.
 */
import {
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  FusedConv2D,
  getKernel,
  type KernelBackend,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  type NamedTensorInfoMap,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from '@tensorflow/tfjs-core';
import { type ConvGeometry, convGeometry, geometryKey, type TfPad } from './conv-geometry.js';
import {
  backpropFilterGraph,
  backpropInputGraph,
  type ConvKernelKind,
  type ConvLayout,
  chooseLayout,
  forwardGraph,
  type LayoutOption,
  NATIVE_ACTIVATIONS,
  type NativeActivation,
} from './conv-graphs.js';
import type { OnnxGraph } from './onnx-model.js';
import type { SessionCache } from './session-cache.js';
import { type EngineBackendName, ioFor } from './tensor-io.js';

/** Which graph form each kernel uses (see conv-graphs.ts). */
export interface LayoutChoice {
  forward: LayoutOption;
  backpropInput: LayoutOption;
  backpropFilter: LayoutOption;
}

export const ORT_KERNEL_NAMES = [Conv2D, FusedConv2D, Conv2DBackpropInput, Conv2DBackpropFilter] as const;

interface KernelArgs {
  inputs: NamedTensorInfoMap;
  attrs?: NamedAttrMap;
  backend: KernelBackend;
}

interface ConvAttrs {
  strides: number | [number, number];
  pad: TfPad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** Geometry of a forward convolution (Conv2D / FusedConv2D) from its inputs and attributes. */
const forwardGeometry = (x: TensorInfo, filter: TensorInfo, at: ConvAttrs) =>
  convGeometry(x.shape, filter.shape, at.strides, at.dilations ?? 1, at.pad, at.dimRoundingMode);

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const usable = (...ts: (TensorInfo | undefined)[]) =>
  ts.every((t) => t === undefined || (t.dtype === 'float32' && numel(t.shape) > 0));

/** Counters of how often each kernel ran natively or fell through, for describeEngine(). */
export interface KernelCounters {
  native: Record<string, number>;
  delegated: Record<string, number>;
}

export interface OrtKernelSet {
  configs: KernelConfig[];
  counters: KernelCounters;
}

/**
 * Builds kernel configs for `backendName`; `previous` holds the kernels they
 * replace (used for the cases they delegate).
 */
export function makeOrtKernels(
  backendName: EngineBackendName,
  cache: SessionCache,
  layout: LayoutChoice,
  previous: Partial<Record<string, KernelConfig>>,
  nchwcBlock = 1,
): OrtKernelSet {
  const counters: KernelCounters = { native: {}, delegated: {} };
  const pick = (kind: ConvKernelKind, g: ConvGeometry): ConvLayout =>
    layout[kind] === 'auto' ? chooseLayout(kind, g, nchwcBlock) : (layout[kind] as ConvLayout);
  const count = (bucket: Record<string, number>, name: string) => {
    bucket[name] = (bucket[name] ?? 0) + 1;
  };
  const delegate = (name: string, args: KernelArgs) => {
    const prev = previous[name];
    if (!prev)
      throw new Error(`@bmc/engine: ${name} on '${backendName}' has no fallback kernel for this case`);
    count(counters.delegated, name);
    return prev.kernelFunc(args as never);
  };

  /** Allocates the output, then takes views (wasm heap growth invalidates older views). */
  const run = (
    args: KernelArgs,
    key: string,
    build: () => OnnxGraph,
    feeds: Record<string, TensorInfo>,
    outName: string,
    outShape: number[],
  ): TensorInfo => {
    const io = ioFor(backendName, args.backend);
    const session = cache.get(key, build);
    const out = io.alloc(outShape);
    const values: Record<string, { data: Float32Array; dims: number[] }> = {};
    for (const [k, t] of Object.entries(feeds)) values[k] = { data: io.view(t), dims: t.shape };
    try {
      session.run(values, outName, { data: io.view(out), dims: outShape });
    } catch (e) {
      io.free(out);
      throw new Error(`@bmc/engine: onnxruntime failed on ${key}: ${e instanceof Error ? e.message : e}`);
    }
    return out;
  };

  const conv2d: KernelFunc = (a) => {
    const args = a as KernelArgs;
    const { x, filter } = args.inputs;
    const at = args.attrs as unknown as ConvAttrs;
    if ((at.dataFormat ?? 'NHWC') !== 'NHWC' || !usable(x, filter)) return delegate(Conv2D, args);
    const g = forwardGeometry(x!, filter!, at);
    count(counters.native, Conv2D);
    const o = { layout: pick('forward', g), bias: false, activation: 'linear' as const, nchwcBlock };
    return run(
      args,
      `conv|${o.layout}|${geometryKey(g)}`,
      () => forwardGraph(g, o),
      { x: x!, w: filter! },
      'y',
      [g.batch, g.outH, g.outW, g.outC],
    );
  };

  const fusedConv2d: KernelFunc = (a) => {
    const args = a as KernelArgs;
    const { x, filter, bias, preluActivationWeights } = args.inputs;
    const at = args.attrs as unknown as ConvAttrs & { activation?: string; leakyreluAlpha?: number };
    const activation = at.activation ?? 'linear';
    if (
      (at.dataFormat ?? 'NHWC') !== 'NHWC' ||
      preluActivationWeights != null ||
      !NATIVE_ACTIVATIONS.includes(activation) ||
      !usable(x, filter, bias ?? undefined)
    ) {
      return delegate(FusedConv2D, args);
    }
    const g = forwardGeometry(x!, filter!, at);
    if (bias && !(bias.shape.length === 1 && bias.shape[0] === g.outC)) return delegate(FusedConv2D, args);
    count(counters.native, FusedConv2D);
    const o = {
      layout: pick('forward', g),
      bias: bias != null,
      activation: activation as NativeActivation,
      leakyreluAlpha: at.leakyreluAlpha ?? 0.2,
      nchwcBlock,
    };
    const feeds: Record<string, TensorInfo> = { x: x!, w: filter! };
    if (bias) feeds.b = bias;
    return run(
      args,
      `fused|${o.layout}|${o.bias}|${activation}|${o.leakyreluAlpha}|${geometryKey(g)}`,
      () => forwardGraph(g, o),
      feeds,
      'y',
      [g.batch, g.outH, g.outW, g.outC],
    );
  };

  const backpropInput: KernelFunc = (a) => {
    const args = a as KernelArgs;
    const { dy, filter } = args.inputs;
    const at = args.attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
    if ((at.dataFormat ?? 'NHWC') !== 'NHWC' || !usable(dy, filter))
      return delegate(Conv2DBackpropInput, args);
    const g: ConvGeometry = convGeometry(
      at.inputShape,
      filter!.shape,
      at.strides,
      1,
      at.pad,
      at.dimRoundingMode,
    );
    count(counters.native, Conv2DBackpropInput);
    const l = pick('backpropInput', g);
    return run(
      args,
      `dx|${l}|${geometryKey(g)}`,
      () => backpropInputGraph(g, l, nchwcBlock),
      { dy: dy!, w: filter! },
      'dx',
      [...at.inputShape],
    );
  };

  const backpropFilter: KernelFunc = (a) => {
    const args = a as KernelArgs;
    const { x, dy } = args.inputs;
    const at = args.attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
    if ((at.dataFormat ?? 'NHWC') !== 'NHWC' || !usable(x, dy)) return delegate(Conv2DBackpropFilter, args);
    const g = convGeometry(x!.shape, at.filterShape, at.strides, 1, at.pad, at.dimRoundingMode);
    count(counters.native, Conv2DBackpropFilter);
    const l = pick('backpropFilter', g);
    return run(args, `dw|${l}|${geometryKey(g)}`, () => backpropFilterGraph(g, l), { x: x!, dy: dy! }, 'dw', [
      ...at.filterShape,
    ]);
  };

  const configs: KernelConfig[] = [
    { kernelName: Conv2D, backendName, kernelFunc: conv2d },
    { kernelName: FusedConv2D, backendName, kernelFunc: fusedConv2d },
    { kernelName: Conv2DBackpropInput, backendName, kernelFunc: backpropInput },
    { kernelName: Conv2DBackpropFilter, backendName, kernelFunc: backpropFilter },
  ];
  return { configs, counters };
}

/**
 * Swaps kernels in tfjs' global registry and returns a function that puts
 * the previous ones back (or removes ours where there was none).
 */
export function swapKernels(configs: readonly KernelConfig[]): () => void {
  const saved = configs.map((c) => ({ c, prev: getKernel(c.kernelName, c.backendName) }));
  for (const { c, prev } of saved) {
    if (prev) unregisterKernel(c.kernelName, c.backendName);
    registerKernel(c);
  }
  return () => {
    for (const { c, prev } of saved) {
      if (getKernel(c.kernelName, c.backendName)?.kernelFunc === c.kernelFunc) {
        unregisterKernel(c.kernelName, c.backendName);
        if (prev) registerKernel(prev);
      }
    }
  };
}
