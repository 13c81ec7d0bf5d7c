/**
 * Parameter and FLOP counts of a TensorFlow.js LayersModel at a chosen input size,
 * plus an FPS helper. Duck-typed: nothing here imports tfjs, so any object shaped like
 * a tfjs `LayersModel` works (layers with `getClassName()`, `getConfig()`,
 * `countParams()`, `computeOutputShape()`, and their `inboundNodes`).
 *
 * FLOP convention (`'mmcv'`, the default) is mmcv's `get_model_complexity_info`, which
 * the thesis used: one multiply-add = 1 FLOP for convolutions and dense layers, plus a
 * convolution's bias adds (one per output element), BatchNorm 2 per element (1 without
 * scale/centre), ReLU-family activations 1 per output element (also when fused into a
 * Conv2D/Dense), pooling 1 per input element, upsampling 1 per output element; dense
 * bias, additions, multiplications and sigmoid are free. `'macs'` counts only the
 * multiply-adds of convolutions and dense layers (fvcore style). `flopsPerMac: 2`
 * counts a multiply-add as two FLOPs (multiply + add) in either convention.
 *
 * With the mmcv convention, mmdetection's RetinaNet R50-FPN (11 classes, P6 from C5)
 * at a 1x3x800x832 input gives 135.73 G, the thesis's baseline figure; see the README.
 */

import { type FpsOptions, type FpsResult, measureFps } from './timing.js';

export { type FpsOptions, type FpsResult, measureFps };

/** A shape with the batch dimension first; `null` for unknown sizes. */
export type Shape = (number | null)[];

export interface SymbolicTensorLike {
  sourceLayer: LayerLike;
  nodeIndex: number;
  tensorIndex: number;
  shape: Shape;
}

export interface NodeLike {
  inputTensors: SymbolicTensorLike[];
}

export interface LayerLike {
  name: string;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
  countParams(): number;
  computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[];
  inboundNodes: NodeLike[];
  trainableWeights?: { shape: Shape }[];
}

/** A tfjs `LayersModel` (or nested functional model), duck-typed. */
export interface ModelLike extends LayerLike {
  layers: LayerLike[];
  inputs: SymbolicTensorLike[];
  outputs: SymbolicTensorLike[];
}

export type FlopConvention = 'mmcv' | 'macs';

export interface ModelStatsOptions {
  /** Input size without the batch dimension, e.g. `[800, 832, 3]` (NHWC). One entry per model input. */
  inputShape: number[] | number[][];
  convention?: FlopConvention;
  /** 1 (default): a multiply-add is 1 FLOP; 2: it is two. */
  flopsPerMac?: 1 | 2;
}

export interface LayerStats {
  /** Layer name; nested models' layers are prefixed `outer/inner`. */
  name: string;
  className: string;
  inputShapes: number[][];
  outputShapes: number[][];
  /** Multiply-adds of convolutions / dense layers (0 for other layers). */
  macs: number;
  /** FLOPs under the chosen convention. */
  flops: number;
}

export interface ModelStats {
  /** Every weight, including non-trainable ones (BatchNorm moving statistics, frozen layers). */
  params: number;
  /** Trainable weights only: what mmcv (PyTorch `requires_grad`) reports. */
  trainableParams: number;
  /** `trainableParams / 1e6`, the "Params (M)" column of papers built on mmdetection. */
  paramsM: number;
  macs: number;
  flops: number;
  /** `flops / 1e9`. */
  gflops: number;
  convention: FlopConvention;
  flopsPerMac: 1 | 2;
  inputShapes: number[][];
  outputShapes: number[][];
  layers: LayerStats[];
}

const RELU_LIKE = new Set(['relu', 'relu6', 'elu', 'selu', 'leakyrelu', 'prelu']);
const RELU_LAYERS = new Set(['ReLU', 'LeakyReLU', 'ELU', 'PReLU', 'ThresholdedReLU']);
const POOL_LAYERS = new Set([
  'MaxPooling1D',
  'MaxPooling2D',
  'MaxPooling3D',
  'AveragePooling1D',
  'AveragePooling2D',
  'AveragePooling3D',
  'GlobalAveragePooling1D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling1D',
  'GlobalMaxPooling2D',
]);

function numel(s: Shape, what: string): number {
  let n = 1;
  for (const d of s) {
    if (d === null || d === undefined)
      throw new Error(`modelStats: ${what} has an unknown dimension ${JSON.stringify(s)}`);
    n *= d;
  }
  return n;
}

function isShapeList(s: Shape | Shape[]): s is Shape[] {
  return Array.isArray(s[0]);
}

function pair(v: unknown): [number, number] {
  return Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)];
}

function channelsOf(shape: Shape, cfg: Record<string, unknown>): number {
  const c = cfg.dataFormat === 'channelsFirst' ? shape[1] : shape[shape.length - 1];
  if (c === null || c === undefined) throw new Error('modelStats: unknown channel count');
  return c;
}

/** MACs and FLOPs of one layer call. Exported for tests and for custom layers. */
export function layerFlops(
  className: string,
  cfg: Record<string, unknown>,
  inShapes: Shape[],
  outShapes: Shape[],
  convention: FlopConvention = 'mmcv',
  flopsPerMac: 1 | 2 = 1,
): { macs: number; flops: number } {
  const where = `${className} ${String(cfg.name ?? '')}`;
  const inS = inShapes[0]!;
  const outS = outShapes[0]!;
  const outN = () => numel(outS, `${where} output`);
  const inN = () => numel(inS, `${where} input`);
  let macs = 0;
  let extra = 0;
  const fusedRelu = () => (RELU_LIKE.has(String(cfg.activation ?? '').toLowerCase()) ? outN() : 0);
  switch (className) {
    case 'Conv1D':
    case 'Conv2D':
    case 'Conv3D': {
      const k = Array.isArray(cfg.kernelSize) ? cfg.kernelSize : [cfg.kernelSize];
      const kProd = (k as number[]).reduce((a, b) => a * b, 1);
      macs = outN() * kProd * channelsOf(inS, cfg);
      extra = (cfg.useBias ? outN() : 0) + fusedRelu();
      break;
    }
    case 'DepthwiseConv2D': {
      const [kh, kw] = pair(cfg.kernelSize);
      macs = outN() * kh * kw;
      extra = (cfg.useBias ? outN() : 0) + fusedRelu();
      break;
    }
    case 'SeparableConv2D': {
      const [kh, kw] = pair(cfg.kernelSize);
      const cin = channelsOf(inS, cfg);
      const dm = Number(cfg.depthMultiplier ?? 1);
      const positions = outN() / channelsOf(outS, cfg);
      macs = positions * cin * dm * kh * kw + outN() * cin * dm;
      extra = (cfg.useBias ? outN() : 0) + fusedRelu();
      break;
    }
    case 'Conv2DTranspose': {
      // mmcv's deconv hook: every input position scatters a kh*kw*Cout kernel.
      const [kh, kw] = pair(cfg.kernelSize);
      macs = inN() * kh * kw * channelsOf(outS, cfg);
      extra = (cfg.useBias ? outN() : 0) + fusedRelu();
      break;
    }
    case 'Dense': {
      const inLast = inS[inS.length - 1]!;
      macs = outN() * inLast;
      extra = fusedRelu();
      break;
    }
    case 'BatchNormalization':
      extra = inN() * (cfg.center !== false || cfg.scale !== false ? 2 : 1);
      break;
    case 'Activation':
      extra = RELU_LIKE.has(String(cfg.activation).toLowerCase()) ? outN() : 0;
      break;
    case 'UpSampling2D':
      extra = outN();
      break;
    default:
      if (RELU_LAYERS.has(className)) extra = outN();
      else if (POOL_LAYERS.has(className)) extra = inN();
  }
  const flops = macs * flopsPerMac + (convention === 'mmcv' ? extra : 0);
  return { macs, flops };
}

function isModel(l: LayerLike): l is ModelLike {
  const m = l as Partial<ModelLike>;
  return Array.isArray(m.layers) && Array.isArray(m.inputs) && Array.isArray(m.outputs);
}

function concrete(s: Shape): number[] {
  return s.map((d) => (d === null ? Number.NaN : d));
}

/**
 * Propagates concrete shapes through a functional model's graph with each layer's own
 * `computeOutputShape`, so a model built for any input size (`[null, null, 3]`) can be
 * measured at a chosen one.
 */
function propagate(
  model: ModelLike,
  inputShapes: Shape[],
  prefix: string,
  out: LayerStats[],
  opts: Required<Omit<ModelStatsOptions, 'inputShape'>>,
): Shape[] {
  const shapes = new Map<LayerLike, Map<number, Shape[]>>();
  const put = (l: LayerLike, node: number, s: Shape[]) => {
    let m = shapes.get(l);
    if (!m) shapes.set(l, (m = new Map()));
    m.set(node, s);
  };
  if (model.inputs.length !== inputShapes.length) {
    throw new Error(
      `modelStats: ${prefix || model.name} has ${model.inputs.length} inputs, got ${inputShapes.length} shapes`,
    );
  }
  model.inputs.forEach((t, i) => {
    put(t.sourceLayer, t.nodeIndex, [inputShapes[i]!]);
  });
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    layer.inboundNodes.forEach((node, n) => {
      const ins: Shape[] = [];
      for (const t of node.inputTensors) {
        const s = shapes.get(t.sourceLayer)?.get(t.nodeIndex)?.[t.tensorIndex];
        if (!s) return; // a node of another graph this layer also belongs to
        ins.push(s);
      }
      if (ins.length === 0) return;
      const name = prefix + layer.name;
      let outs: Shape[];
      if (isModel(layer)) {
        outs = propagate(layer, ins, `${name}/`, out, opts);
      } else {
        const o = layer.computeOutputShape(ins.length === 1 ? ins[0]! : ins);
        outs = isShapeList(o) ? o : [o];
        const { macs, flops } = layerFlops(
          layer.getClassName(),
          layer.getConfig(),
          ins,
          outs,
          opts.convention,
          opts.flopsPerMac,
        );
        out.push({
          name,
          className: layer.getClassName(),
          inputShapes: ins.map(concrete),
          outputShapes: outs.map(concrete),
          macs,
          flops,
        });
      }
      put(layer, n, outs);
    });
  }
  return model.outputs.map((t) => {
    const s = shapes.get(t.sourceLayer)?.get(t.nodeIndex)?.[t.tensorIndex];
    if (!s)
      throw new Error(`modelStats: could not reach output ${t.sourceLayer.name} of ${prefix || model.name}`);
    return s;
  });
}

/** Parameters and FLOPs of `model` for one image (batch 1) of size `inputShape`. */
export function modelStats(model: ModelLike, options: ModelStatsOptions): ModelStats {
  const convention = options.convention ?? 'mmcv';
  const flopsPerMac = options.flopsPerMac ?? 1;
  const raw = options.inputShape;
  const perInput = (Array.isArray(raw[0]) ? raw : [raw]) as number[][];
  const inputShapes: Shape[] = perInput.map((s) => [1, ...s]);
  const layers: LayerStats[] = [];
  const outs = propagate(model, inputShapes, '', layers, { convention, flopsPerMac });
  const params = model.countParams();
  const trainableParams = (model.trainableWeights ?? []).reduce((s, w) => s + numel(w.shape, 'weight'), 0);
  const macs = layers.reduce((s, l) => s + l.macs, 0);
  const flops = layers.reduce((s, l) => s + l.flops, 0);
  return {
    params,
    trainableParams,
    paramsM: trainableParams / 1e6,
    macs,
    flops,
    gflops: flops / 1e9,
    convention,
    flopsPerMac,
    inputShapes: inputShapes.map(concrete),
    outputShapes: outs.map(concrete),
    layers,
  };
}

/** The parts of the tfjs namespace `measureModelFps` uses. */
export interface TfLike {
  zeros(shape: number[]): unknown;
  dispose(container: unknown): void;
}

interface TensorLike {
  data(): Promise<unknown>;
}

/**
 * FPS of `model.predict` on one zero image of `inputShape` (batch 1): warm-up runs, then
 * the median of timed runs. Each run waits for every output's data (so asynchronous
 * backends are timed to completion) and disposes the outputs; the input is disposed at
 * the end, so the tensor count is unchanged.
 */
export async function measureModelFps(
  tf: TfLike,
  model: { predict(x: unknown): unknown },
  inputShape: number[],
  options: FpsOptions = {},
): Promise<FpsResult> {
  const x = tf.zeros([1, ...inputShape]);
  try {
    return await measureFps(async () => {
      const y = model.predict(x);
      const outs = (Array.isArray(y) ? y : [y]) as TensorLike[];
      await Promise.all(outs.map((t) => t.data()));
      tf.dispose(y);
    }, options);
  } finally {
    tf.dispose(x);
  }
}
