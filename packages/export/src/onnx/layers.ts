/**
 * One converter per tfjs layer class. A converter reads the layer's config and
 * weights and appends ONNX nodes that compute the same function on the stored
 * layout (NCHW for rank-4 values, see layout.ts), returning its output names.
 */
import { applyActivation, UnsupportedLayerError } from './activations.js';
import type { OnnxAttr, OnnxGraphBuilder } from './graph-builder.js';
import {
  convKernelToOihw,
  depthwiseKernelToOihw,
  fromTfLayout,
  NCHW_TO_NHWC,
  NHWC_TO_NCHW,
  onnxAxis,
  toTfLayout,
  type Value,
} from './layout.js';

/** A tfjs layer as the converters see it (the subset of `tf.layers.Layer` used). */
export interface LayerLike {
  name: string;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
  weights: ReadonlyArray<{
    name: string;
    originalName?: string;
    shape: readonly number[];
    read(): TensorLike;
  }>;
}
interface TensorLike {
  dataSync(): ArrayLike<number>;
}

/** Folded-BatchNorm statistics: `y = x * scale + shift` per channel. */
export interface ChannelAffine {
  scale: Float64Array;
  shift: Float64Array;
}

export interface LayerContext {
  g: OnnxGraphBuilder;
  layer: LayerLike;
  config: Record<string, unknown>;
  /** Prefix for node and value names of this call. */
  base: string;
  inputs: readonly Value[];
  /** tfjs output shapes of this call. */
  outputShapes: ReadonlyArray<ReadonlyArray<number | null>>;
  /** An initialiser made once per layer and key, so shared layers share their weights. */
  initializer(key: string, make: () => string): string;
  /** Set on a convolution whose only consumer, a BatchNormalization, is folded into it. */
  foldedBn?: ChannelAffine;
}

export type LayerConverter = (ctx: LayerContext) => string[];

/** The layer's weight whose name ends in `/<suffix>` (or equals it), as float32. */
export function layerWeight(
  layer: LayerLike,
  suffix: string,
): { shape: readonly number[]; data: Float32Array } | undefined {
  const w = layer.weights.find((v) => {
    const n = v.originalName ?? v.name;
    return n === suffix || n.endsWith(`/${suffix}`) || n.endsWith(`/${suffix}:0`);
  });
  if (!w) return undefined;
  return { shape: w.shape, data: Float32Array.from(w.read().dataSync()) };
}

function requireWeight(layer: LayerLike, suffix: string) {
  const w = layerWeight(layer, suffix);
  if (!w)
    throw new Error(`ONNX export: layer '${layer.name}' (${layer.getClassName()}) has no '${suffix}' weight`);
  return w;
}

const BN_CLASSES = new Set(['BatchNormalization', 'FrozenBatchNorm']);
const CONV_CLASSES = new Set(['Conv2D', 'DepthwiseConv2D']);

export const isBatchNorm = (layer: LayerLike) => BN_CLASSES.has(layer.getClassName());
/** Convolutions a following BatchNormalization can be folded into (those without a non-linear activation). */
export const isFoldableConv = (layer: LayerLike) =>
  CONV_CLASSES.has(layer.getClassName()) && (layer.getConfig().activation ?? 'linear') === 'linear';

/** Per-channel affine form of a (frozen or inference-mode) BatchNormalization on a rank-`rank` input. */
export function batchNormAffine(layer: LayerLike, rank: number): ChannelAffine {
  const config = layer.getConfig();
  const axis = (config.axis as number | undefined) ?? -1;
  const mean = requireWeight(layer, 'moving_mean').data;
  const variance = requireWeight(layer, 'moving_variance').data;
  if (axis !== -1 && axis !== rank - 1) {
    throw new UnsupportedLayerError(
      `ONNX export: layer '${layer.name}' (${layer.getClassName()}) normalises axis ${axis}; only the channel (last) axis is supported`,
    );
  }
  const gamma = layerWeight(layer, 'gamma')?.data;
  const beta = layerWeight(layer, 'beta')?.data;
  const eps = (config.epsilon as number | undefined) ?? 1e-3;
  const n = mean.length;
  const scale = new Float64Array(n);
  const shift = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    // tfjs adds epsilon in float32 before rsqrt.
    scale[c] = (gamma ? gamma[c]! : 1) / Math.sqrt(Math.fround(variance[c]! + eps));
    shift[c] = (beta ? beta[c]! : 0) - mean[c]! * scale[c]!;
  }
  return { scale, shift };
}

function pair(v: unknown, name: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2) return [v[0] as number, v[1] as number];
  throw new Error(`ONNX export: cannot read ${name} ${JSON.stringify(v)}`);
}

function requireChannelsLast(ctx: LayerContext) {
  const df = ctx.config.dataFormat;
  if (df !== undefined && df !== 'channelsLast') {
    throw new UnsupportedLayerError(
      `ONNX export: layer '${ctx.layer.name}' (${ctx.layer.getClassName()}) uses dataFormat '${df}'; only channelsLast is supported`,
    );
  }
}

/**
 * Conv/pool padding attributes. TensorFlow's 'same' pads `total = max((ceil(in/s) - 1) * s
 * + (k - 1) * d + 1 - in, 0)` with the odd pixel at the bottom/right, which is ONNX's
 * SAME_UPPER. For stride 1 the total is `(k - 1) * d` whatever the input size, so explicit
 * pads are written (onnxruntime rejects SAME_UPPER together with dilation); tfjs
 * forbids stride > 1 together with dilation > 1, so SAME_UPPER only meets dilation 1.
 */
function paddingAttrs(
  padding: unknown,
  kernel: [number, number],
  strides: [number, number],
  dilations: [number, number],
  where: string,
): Record<string, OnnxAttr> {
  if (padding === 'valid') return { pads: { ints: [0, 0, 0, 0] } };
  if (padding !== 'same')
    throw new UnsupportedLayerError(`ONNX export: ${where} padding '${padding}' is not supported`);
  if (strides[0] === 1 && strides[1] === 1) {
    const th = (kernel[0] - 1) * dilations[0];
    const tw = (kernel[1] - 1) * dilations[1];
    return {
      pads: {
        ints: [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)],
      },
    };
  }
  if (dilations[0] !== 1 || dilations[1] !== 1) {
    throw new UnsupportedLayerError(`ONNX export: ${where} combines stride > 1 with dilation > 1`);
  }
  return { auto_pad: { string: 'SAME_UPPER' } };
}

function where(ctx: LayerContext) {
  return `layer '${ctx.layer.name}' (${ctx.layer.getClassName()})`;
}

function activation(ctx: LayerContext, x: string): string {
  const act = (ctx.config.activation as string | undefined) ?? 'linear';
  return applyActivation(ctx.g, x, act, ctx.base, ctx.outputShapes[0]!.length, where(ctx));
}

function conv2d(ctx: LayerContext, depthwise: boolean): string[] {
  requireChannelsLast(ctx);
  const { layer, g } = ctx;
  const kernel = requireWeight(layer, depthwise ? 'depthwise_kernel' : 'kernel');
  const [kh, kw, cin, last] = kernel.shape as [number, number, number, number];
  const cout = depthwise ? cin * last : last;
  const strides = pair(ctx.config.strides ?? 1, 'strides');
  const dilations = pair(ctx.config.dilationRate ?? 1, 'dilationRate');
  const useBias = ctx.config.useBias !== false;
  const fold = ctx.foldedBn;
  const weightName = ctx.initializer(fold ? 'kernel+bn' : 'kernel', () => {
    const oihw = depthwise
      ? depthwiseKernelToOihw(kernel.data, kernel.shape)
      : convKernelToOihw(kernel.data, kernel.shape);
    if (fold) {
      const per = oihw.length / cout;
      for (let o = 0; o < cout; o++) {
        const s = fold.scale[o]!;
        for (let j = o * per; j < (o + 1) * per; j++) oihw[j] = oihw[j]! * s;
      }
    }
    return g.floatTensor(`${layer.name}/kernel`, [cout, depthwise ? 1 : cin, kh, kw], oihw);
  });
  const inputs = [ctx.inputs[0]!.name, weightName];
  if (useBias || fold) {
    inputs.push(
      ctx.initializer(fold ? 'bias+bn' : 'bias', () => {
        const bias = useBias ? requireWeight(layer, 'bias').data : new Float32Array(cout);
        const out = new Float32Array(cout);
        for (let o = 0; o < cout; o++) out[o] = fold ? bias[o]! * fold.scale[o]! + fold.shift[o]! : bias[o]!;
        return g.floatTensor(`${layer.name}/bias`, [cout], out);
      }),
    );
  }
  const attrs: Record<string, OnnxAttr> = {
    kernel_shape: { ints: [kh, kw] },
    strides: { ints: strides },
    dilations: { ints: dilations },
    ...paddingAttrs(ctx.config.padding, [kh, kw], strides, dilations, where(ctx)),
  };
  if (depthwise) attrs.group = { int: cin };
  const y = g.node('Conv', inputs, ctx.base, attrs)[0]!;
  return [activation(ctx, y)];
}

function batchNorm(ctx: LayerContext): string[] {
  const { g, layer } = ctx;
  const rank = ctx.inputs[0]!.shape.length;
  if (rank !== 4 && rank !== 2) {
    // ONNX BatchNormalization normalises axis 1; for other ranks that is not tfjs's last axis.
    const affine = batchNormAffine(layer, rank);
    const s = ctx.initializer('scale', () =>
      g.floatTensor(`${layer.name}/scale`, [affine.scale.length], Float32Array.from(affine.scale)),
    );
    const b = ctx.initializer('shift', () =>
      g.floatTensor(`${layer.name}/shift`, [affine.shift.length], Float32Array.from(affine.shift)),
    );
    const m = g.node('Mul', [ctx.inputs[0]!.name, s], `${ctx.base}/scale`)[0]!;
    return g.node('Add', [m, b], ctx.base);
  }
  const params = ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((k) =>
    ctx.initializer(k, () => {
      const mean = requireWeight(layer, 'moving_mean');
      const w = layerWeight(layer, k) ?? {
        shape: mean.shape,
        data: new Float32Array(mean.data.length).fill(k === 'gamma' ? 1 : 0),
      };
      return g.floatTensor(`${layer.name}/${k}`, [w.data.length], w.data);
    }),
  );
  batchNormAffine(layer, rank); // validates the axis
  const eps =
    (ctx.config.epsilon as number | undefined) ?? (layer.getClassName() === 'FrozenBatchNorm' ? 1e-5 : 1e-3);
  return g.node('BatchNormalization', [ctx.inputs[0]!.name, ...params], ctx.base, {
    epsilon: { float: eps },
  });
}

function dense(ctx: LayerContext): string[] {
  const { g, layer } = ctx;
  const kernel = requireWeight(layer, 'kernel');
  const [cin, cout] = kernel.shape as [number, number];
  const wName = ctx.initializer('kernel', () =>
    g.floatTensor(`${layer.name}/kernel`, [cin, cout], kernel.data),
  );
  const bName =
    ctx.config.useBias !== false
      ? ctx.initializer('bias', () =>
          g.floatTensor(`${layer.name}/bias`, [cout], requireWeight(layer, 'bias').data),
        )
      : undefined;
  const x = ctx.inputs[0]!;
  const rank = x.shape.length;
  let y: string;
  if (rank === 2) {
    y = g.node('Gemm', bName ? [x.name, wName, bName] : [x.name, wName], ctx.base)[0]!;
  } else {
    // tfjs Dense contracts the last tfjs axis; on NCHW values that means going through NHWC.
    const plain = toTfLayout(g, x, ctx.base);
    y = g.node('MatMul', [plain, wName], `${ctx.base}/matmul`)[0]!;
    if (bName) y = g.node('Add', [y, bName], `${ctx.base}/bias`)[0]!;
    y = fromTfLayout(g, y, rank, ctx.base);
  }
  return [activation(ctx, y)];
}

/** Keras merge layers expand lower-rank inputs at axis 1 until ranks match; mirror that on the stored layout. */
function mergeOperands(ctx: LayerContext): string[] {
  const rank = Math.max(...ctx.inputs.map((v) => v.shape.length));
  return ctx.inputs.map((v, i) => {
    const r = v.shape.length;
    if (r === rank) return v.name;
    if (rank === 4 && r === 2) {
      // tfjs [N, C] -> [N, 1, 1, C] (NHWC) = [N, C, 1, 1] (NCHW)
      return ctx.g.node('Unsqueeze', [v.name, ctx.g.int64([2, 3])], `${ctx.base}/expand${i}`)[0]!;
    }
    if (rank !== 4) {
      const axes = Array.from({ length: rank - r }, (_, k) => k + 1);
      return ctx.g.node('Unsqueeze', [v.name, ctx.g.int64(axes)], `${ctx.base}/expand${i}`)[0]!;
    }
    throw new UnsupportedLayerError(`ONNX export: ${where(ctx)} merges rank ${r} with rank ${rank}`);
  });
}

function merge(binary: string, nary?: string): LayerConverter {
  return (ctx) => {
    const xs = mergeOperands(ctx);
    if (xs.length > 2 && nary) return ctx.g.node(nary, xs, ctx.base);
    let acc = xs[0]!;
    for (let i = 1; i < xs.length; i++) {
      acc = ctx.g.node(binary, [acc, xs[i]!], i === xs.length - 1 ? ctx.base : `${ctx.base}/${i}`)[0]!;
    }
    return [acc];
  };
}

function pool(op: 'MaxPool' | 'AveragePool'): LayerConverter {
  return (ctx) => {
    requireChannelsLast(ctx);
    const k = pair(ctx.config.poolSize ?? 2, 'poolSize');
    const s = pair(ctx.config.strides ?? k, 'strides');
    const attrs: Record<string, OnnxAttr> = {
      kernel_shape: { ints: k },
      strides: { ints: s },
      ...paddingAttrs(ctx.config.padding ?? 'valid', k, s, [1, 1], where(ctx)),
    };
    // TensorFlow's 'same' average excludes padded cells, ONNX's default count_include_pad = 0.
    return ctx.g.node(op, [ctx.inputs[0]!.name], ctx.base, attrs);
  };
}

function globalPool(op: 'GlobalAveragePool' | 'GlobalMaxPool'): LayerConverter {
  return (ctx) => {
    requireChannelsLast(ctx);
    const keep = ctx.config.keepDims === true;
    const y = ctx.g.node(op, [ctx.inputs[0]!.name], keep ? ctx.base : `${ctx.base}/pool`)[0]!;
    return keep ? [y] : ctx.g.node('Flatten', [y], ctx.base, { axis: { int: 1 } });
  };
}

function reshape(ctx: LayerContext): string[] {
  // tfjs stores the inferred dimension (-1) as null.
  const target = (ctx.config.targetShape as Array<number | null>).map((d) => d ?? -1);
  const x = ctx.inputs[0]!;
  const plain = toTfLayout(ctx.g, x, ctx.base);
  // A leading 0 copies the batch size (allowzero = 0); tfjs target shapes never contain 0.
  const y = ctx.g.node('Reshape', [plain, ctx.g.int64([0, ...target])], `${ctx.base}/reshape`)[0]!;
  return [fromTfLayout(ctx.g, y, target.length + 1, ctx.base)];
}

function flatten(ctx: LayerContext): string[] {
  const plain = toTfLayout(ctx.g, ctx.inputs[0]!, ctx.base);
  return ctx.g.node('Flatten', [plain], ctx.base, { axis: { int: 1 } });
}

function permute(ctx: LayerContext): string[] {
  const dims = ctx.config.dims as number[];
  const rank = dims.length + 1;
  const tfPerm = [0, ...dims];
  // stored -> tfjs order -> permuted (tfjs order) -> stored
  const toTf = rank === 4 ? NCHW_TO_NHWC : [...Array(rank).keys()];
  const fromTf = rank === 4 ? NHWC_TO_NCHW : [...Array(rank).keys()];
  const perm = fromTf.map((i) => toTf[tfPerm[i]!]!);
  return ctx.g.node('Transpose', [ctx.inputs[0]!.name], ctx.base, { perm: { ints: perm } });
}

function concatenate(ctx: LayerContext): string[] {
  const rank = ctx.inputs[0]!.shape.length;
  if (ctx.inputs.some((v) => v.shape.length !== rank)) {
    throw new UnsupportedLayerError(`ONNX export: ${where(ctx)} concatenates inputs of different ranks`);
  }
  const axis = onnxAxis((ctx.config.axis as number | undefined) ?? -1, rank);
  return ctx.g.node(
    'Concat',
    ctx.inputs.map((v) => v.name),
    ctx.base,
    { axis: { int: axis } },
  );
}

function upsampling(ctx: LayerContext): string[] {
  requireChannelsLast(ctx);
  const [sh, sw] = pair(ctx.config.size ?? 2, 'size');
  const interpolation = (ctx.config.interpolation as string | undefined) ?? 'nearest';
  // tfjs resizes with alignCorners = false, halfPixelCenters = false: src = dst * in / out,
  // ONNX 'asymmetric'; nearest takes floor of that.
  const attrs: Record<string, OnnxAttr> =
    interpolation === 'nearest'
      ? {
          mode: { string: 'nearest' },
          coordinate_transformation_mode: { string: 'asymmetric' },
          nearest_mode: { string: 'floor' },
        }
      : interpolation === 'bilinear'
        ? { mode: { string: 'linear' }, coordinate_transformation_mode: { string: 'asymmetric' } }
        : (() => {
            throw new UnsupportedLayerError(`ONNX export: ${where(ctx)} interpolation '${interpolation}'`);
          })();
  return ctx.g.node('Resize', [ctx.inputs[0]!.name, '', ctx.g.float([1, 1, sh, sw])], ctx.base, attrs);
}

function zeroPadding(ctx: LayerContext): string[] {
  requireChannelsLast(ctx);
  const p = ctx.config.padding as [[number, number], [number, number]];
  const [[t, b], [l, r]] = p;
  return ctx.g.node('Pad', [ctx.inputs[0]!.name, ctx.g.int64([0, 0, t, l, 0, 0, b, r])], ctx.base, {
    mode: { string: 'constant' },
  });
}

function cropping(ctx: LayerContext): string[] {
  requireChannelsLast(ctx);
  const [[t, b], [l, r]] = ctx.config.cropping as [[number, number], [number, number]];
  const END = Number.MAX_SAFE_INTEGER;
  return ctx.g.node(
    'Slice',
    [
      ctx.inputs[0]!.name,
      ctx.g.int64([t, l]),
      ctx.g.int64([b ? -b : END, r ? -r : END]),
      ctx.g.int64([2, 3]),
    ],
    ctx.base,
  );
}

function reluLayer(ctx: LayerContext): string[] {
  const max = ctx.config.maxValue as number | null | undefined;
  const x = ctx.inputs[0]!.name;
  if (max == null) return ctx.g.node('Relu', [x], ctx.base);
  return ctx.g.node('Clip', [x, ctx.g.float([0], true), ctx.g.float([max], true)], ctx.base);
}

function softmaxLayer(ctx: LayerContext): string[] {
  const rank = ctx.inputs[0]!.shape.length;
  const axis = (ctx.config.axis as number | undefined) ?? -1;
  return ctx.g.node('Softmax', [ctx.inputs[0]!.name], ctx.base, { axis: { int: onnxAxis(axis, rank) } });
}

function rescaling(ctx: LayerContext): string[] {
  const scale = (ctx.config.scale as number | undefined) ?? 1;
  const offset = (ctx.config.offset as number | undefined) ?? 0;
  const m = ctx.g.node('Mul', [ctx.inputs[0]!.name, ctx.g.float([scale], true)], `${ctx.base}/scale`)[0]!;
  return ctx.g.node('Add', [m, ctx.g.float([offset], true)], ctx.base);
}

/** A tfjs axis config (number or one-element list) as a non-negative tfjs axis; several axes are refused. */
function singleAxis(ctx: LayerContext, value: unknown, rank: number): number {
  const list = Array.isArray(value) ? value : [value ?? -1];
  if (list.length !== 1 || typeof list[0] !== 'number') {
    throw new UnsupportedLayerError(
      `ONNX export: ${where(ctx)} works on axes ${JSON.stringify(value)}; only one axis is supported`,
    );
  }
  const a = list[0] < 0 ? list[0] + rank : list[0];
  if (a < 1 || a >= rank)
    throw new UnsupportedLayerError(`ONNX export: ${where(ctx)} axis ${list[0]} out of range`);
  return a;
}

/**
 * tfjs LayerNormalization over the last axis -> ONNX LayerNormalization (opset 17) over the last
 * axis of the tfjs-ordered value: `(x - mean) / sqrt(var + eps) * gamma + beta`, the biased
 * variance and epsilon inside the root on both sides. Rank-4 (NCHW-stored) values go through NHWC.
 */
function layerNormalization(ctx: LayerContext): string[] {
  const { g, layer } = ctx;
  const x = ctx.inputs[0]!;
  const rank = x.shape.length;
  const axis = singleAxis(ctx, ctx.config.axis, rank);
  if (axis !== rank - 1) {
    throw new UnsupportedLayerError(
      `ONNX export: ${where(ctx)} normalises axis ${axis}; only the last axis is supported`,
    );
  }
  const c = x.shape[rank - 1];
  if (typeof c !== 'number')
    throw new UnsupportedLayerError(`ONNX export: ${where(ctx)} has an unknown channel count`);
  const param = (key: 'gamma' | 'beta', fill: number) =>
    ctx.initializer(key, () =>
      g.floatTensor(
        `${layer.name}/${key}`,
        [c],
        layerWeight(layer, key)?.data ?? new Float32Array(c).fill(fill),
      ),
    );
  const plain = toTfLayout(g, x, ctx.base);
  const y = g.node(
    'LayerNormalization',
    [plain, param('gamma', 1), param('beta', 0)],
    rank === 4 ? `${ctx.base}/ln` : ctx.base,
    { axis: { int: -1 }, epsilon: { float: (ctx.config.epsilon as number | undefined) ?? 1e-3 } },
  )[0]!;
  return [fromTfLayout(g, y, rank, ctx.base)];
}

/**
 * tfjs Dot of two rank-3 tensors (batched matrix product over the given axes, tfjs's `batchDot`)
 * -> ONNX MatMul, transposing an operand whose contracted axis is not the one MatMul contracts.
 */
function dot(ctx: LayerContext): string[] {
  const [x, y] = ctx.inputs;
  if (ctx.inputs.length !== 2 || x!.shape.length !== 3 || y!.shape.length !== 3) {
    throw new UnsupportedLayerError(
      `ONNX export: ${where(ctx)}: only the product of two rank-3 tensors is supported`,
    );
  }
  if (ctx.config.normalize === true) {
    throw new UnsupportedLayerError(`ONNX export: ${where(ctx)} normalize: true is not supported`);
  }
  const axes = ctx.config.axes;
  const [ax, ay] = (Array.isArray(axes) ? axes : [axes, axes]).map((a) => singleAxis(ctx, a, 3)) as [
    number,
    number,
  ];
  const swap = (v: string, i: number) =>
    ctx.g.node('Transpose', [v], `${ctx.base}/t${i}`, { perm: { ints: [0, 2, 1] } })[0]!;
  const a = ax === 2 ? x!.name : swap(x!.name, 0);
  const b = ay === 1 ? y!.name : swap(y!.name, 1);
  return ctx.g.node('MatMul', [a, b], ctx.base);
}

/** tfjs GlobalAverage/MaxPooling1D: reduce the steps axis (1) of `[N, T, C]`. */
function globalPool1d(op: 'ReduceMean' | 'ReduceMax'): LayerConverter {
  return (ctx) => {
    requireChannelsLast(ctx);
    // Opset 17: ReduceMean / ReduceMax take their axes as an attribute (an input from opset 18).
    return ctx.g.node(op, [ctx.inputs[0]!.name], ctx.base, { axes: { ints: [1] }, keepdims: { int: 0 } });
  };
}

const identity: LayerConverter = (ctx) => [ctx.inputs[0]!.name];

/** Converters by tfjs class name (`layer.getClassName()`). */
export const LAYER_CONVERTERS: Readonly<Record<string, LayerConverter>> = {
  Conv2D: (ctx) => conv2d(ctx, false),
  DepthwiseConv2D: (ctx) => conv2d(ctx, true),
  BatchNormalization: batchNorm,
  FrozenBatchNorm: batchNorm,
  Dense: dense,
  Activation: (ctx) => [activation(ctx, ctx.inputs[0]!.name)],
  ReLU: reluLayer,
  LeakyReLU: (ctx) =>
    ctx.g.node('LeakyRelu', [ctx.inputs[0]!.name], ctx.base, {
      alpha: { float: (ctx.config.alpha as number | undefined) ?? 0.3 },
    }),
  ELU: (ctx) =>
    ctx.g.node('Elu', [ctx.inputs[0]!.name], ctx.base, {
      alpha: { float: (ctx.config.alpha as number | undefined) ?? 1 },
    }),
  Softmax: softmaxLayer,
  Add: merge('Add', 'Sum'),
  Multiply: merge('Mul'),
  Maximum: merge('Max', 'Max'),
  Minimum: merge('Min', 'Min'),
  Average: (ctx) => ctx.g.node('Mean', mergeOperands(ctx), ctx.base),
  Concatenate: concatenate,
  Reshape: reshape,
  Flatten: flatten,
  Permute: permute,
  UpSampling2D: upsampling,
  GlobalAveragePooling2D: globalPool('GlobalAveragePool'),
  GlobalMaxPooling2D: globalPool('GlobalMaxPool'),
  GlobalAveragePooling1D: globalPool1d('ReduceMean'),
  GlobalMaxPooling1D: globalPool1d('ReduceMax'),
  LayerNormalization: layerNormalization,
  Dot: dot,
  MaxPooling2D: pool('MaxPool'),
  AveragePooling2D: pool('AveragePool'),
  ZeroPadding2D: zeroPadding,
  Cropping2D: cropping,
  Rescaling: rescaling,
  // Inference-time identities.
  Dropout: identity,
  SpatialDropout1D: identity,
  SpatialDropout2D: identity,
  GaussianNoise: identity,
  GaussianDropout: identity,
  AlphaDropout: identity,
};

/** tfjs layer classes the ONNX writer supports (besides InputLayer and nested functional models). */
export const SUPPORTED_LAYER_CLASSES: readonly string[] = Object.keys(LAYER_CONVERTERS).sort();
