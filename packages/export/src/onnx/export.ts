/**
 * Walks a tfjs functional model's layer graph (from its outputs back to its
 * inputs, shared layers and nested functional models included) and writes an
 * ONNX opset-17 ModelProto.
 */
import { UnsupportedLayerError } from './activations.js';
import { OnnxGraphBuilder, type OnnxValueInfo, valueInfo } from './graph-builder.js';
import {
  batchNormAffine,
  type ChannelAffine,
  isBatchNorm,
  isFoldableConv,
  LAYER_CONVERTERS,
  type LayerLike,
  SUPPORTED_LAYER_CLASSES,
} from './layers.js';
import { NHWC_TO_NCHW, toTfLayout, type Value } from './layout.js';
import { ModelProto } from './proto.js';

export const ONNX_OPSET = 17;
/** IR version 8 is the one that goes with opset 17 (onnx 1.12). */
export const ONNX_IR_VERSION = 8;

/** The parts of a tfjs symbolic tensor, node and functional model the walker reads. */
interface SymTensor {
  id: number;
  shape: ReadonlyArray<number | null>;
  sourceLayer: GraphLayer;
  nodeIndex: number;
}
interface GraphNode {
  outboundLayer: GraphLayer;
  inputTensors: SymTensor[];
  outputTensors: SymTensor[];
}
interface GraphLayer extends LayerLike {
  inboundNodes: GraphNode[];
}
/** A tfjs functional model (`tf.LayersModel`), structurally. */
export interface FunctionalModelLike {
  name: string;
  inputs: ReadonlyArray<unknown>;
  outputs: ReadonlyArray<unknown>;
  inputNames?: readonly string[];
  outputNames: readonly string[];
}

export interface OnnxExportOptions {
  /** Graph input names; default: the model's input layer names. */
  inputNames?: readonly string[];
  /** Graph output names; default: the model's output names. */
  outputNames?: readonly string[];
  /**
   * Symbolic names of tfjs's unknown dimensions, per output (`[axis] -> name`); by default
   * axis 0 is 'N' and other unknown axes are `<output>_d<axis>`.
   */
  outputDimParams?: Record<string, Record<number, string>>;
  /**
   * Rank-4 inputs are NCHW `[N, C, H, W]`; H and W are symbolic when the tfjs input leaves
   * them unknown. `dynamicSpatial: true` makes them symbolic even when the tfjs model fixed
   * them (only right if no layer bakes the size in, e.g. a Reshape to a fixed anchor count).
   */
  dynamicSpatial?: boolean;
  /** Keep rank-4 outputs NCHW; by default they are transposed back to tfjs's NHWC. */
  nchwOutputs?: boolean;
  /** Fold BatchNormalization into the preceding convolution when it is its only consumer (default true). */
  foldBatchNorm?: boolean;
  /** Fixes the batch dimension (default: symbolic 'N'). */
  batchSize?: number;
  /**
   * Appends nodes after the model's graph (e.g. post-processing); returns the extra graph
   * outputs. Receives the graph's input and output value names.
   */
  extend?: (
    g: OnnxGraphBuilder,
    io: { inputs: readonly string[]; outputs: readonly string[] },
  ) => OnnxValueInfo[];
  /** `metadata_props` entries (string -> string). */
  metadata?: Readonly<Record<string, string>>;
  graphName?: string;
  producerVersion?: string;
  docString?: string;
}

/** What the exporter did, for logs and tests. */
export interface OnnxExportSummary {
  nodes: number;
  initializers: number;
  /** Float32 parameters written (after folding). */
  parameters: number;
  foldedBatchNorms: number;
  opCounts: Record<string, number>;
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

export interface OnnxExportResult {
  bytes: Uint8Array;
  summary: OnnxExportSummary;
}

const FUNCTIONAL_CLASSES = new Set(['Functional', 'Model', 'Sequential']);

function isFunctional(layer: GraphLayer): layer is GraphLayer & FunctionalModelLike {
  return (
    FUNCTIONAL_CLASSES.has(layer.getClassName()) && Array.isArray((layer as { layers?: unknown }).layers)
  );
}

class GraphWalker {
  readonly g = new OnnxGraphBuilder();
  foldedBatchNorms = 0;
  private readonly initializers = new Map<LayerLike, Map<string, string>>();

  constructor(private readonly foldBatchNorm: boolean) {}

  /** Converts `model` applied to `inputs`; returns its output values. */
  convertModel(model: FunctionalModelLike, inputs: readonly Value[], scope: string): Value[] {
    const modelInputs = model.inputs as SymTensor[];
    const modelOutputs = model.outputs as SymTensor[];
    const values = new Map<number, Value>();
    modelInputs.forEach((t, i) => {
      values.set(t.id, inputs[i]!);
    });

    const order = this.topologicalNodes(modelOutputs, values);
    const consumers = new Map<number, number>();
    const bump = (t: SymTensor) => consumers.set(t.id, (consumers.get(t.id) ?? 0) + 1);
    for (const node of order) node.inputTensors.forEach(bump);
    // An output is a consumer the conv cannot absorb.
    modelOutputs.forEach(bump);

    const folds = new Map<GraphNode, { affine: ChannelAffine; bn: string }>();
    const foldedBn = new Set<GraphNode>();
    if (this.foldBatchNorm) {
      for (const node of order) {
        if (!isBatchNorm(node.outboundLayer) || node.inputTensors.length !== 1) continue;
        const src = node.inputTensors[0]!;
        if (values.has(src.id) || consumers.get(src.id) !== 1) continue;
        const srcNode = src.sourceLayer.inboundNodes[src.nodeIndex]!;
        if (!isFoldableConv(srcNode.outboundLayer)) continue;
        folds.set(srcNode, { affine: batchNormAffine(node.outboundLayer, 4), bn: node.outboundLayer.name });
        foldedBn.add(node);
      }
    }

    for (const node of order) {
      const layer = node.outboundLayer;
      const inValues = node.inputTensors.map((t) => {
        const v = values.get(t.id);
        if (!v) throw new Error(`ONNX export: internal error, tensor ${t.id} used before it was produced`);
        return v;
      });
      const callIndex = layer.inboundNodes.indexOf(node);
      const base = `${scope}${layer.name}${layer.inboundNodes.length > 1 ? `_call${callIndex}` : ''}`;
      let outNames: string[];
      if (foldedBn.has(node)) {
        this.foldedBatchNorms++;
        outNames = [inValues[0]!.name];
      } else if (isFunctional(layer)) {
        outNames = this.convertModel(layer, inValues, `${base}/`).map((v) => v.name);
      } else {
        const cls = layer.getClassName();
        const convert = LAYER_CONVERTERS[cls];
        if (!convert) {
          throw new UnsupportedLayerError(
            `ONNX export: layer '${layer.name}' of class '${cls}' is not supported ` +
              `(supported classes: ${SUPPORTED_LAYER_CLASSES.join(', ')})`,
          );
        }
        const fold = folds.get(node);
        // A shared conv followed by different BNs gets one folded weight set per BN.
        const foldKey = fold ? `+${fold.bn}` : '';
        outNames = convert({
          g: this.g,
          layer,
          config: layer.getConfig(),
          base,
          inputs: inValues,
          outputShapes: node.outputTensors.map((t) => t.shape),
          initializer: (key, make) => this.initializer(layer, `${key}${foldKey}`, make),
          ...(fold ? { foldedBn: fold.affine } : {}),
        });
      }
      if (outNames.length !== node.outputTensors.length) {
        throw new Error(
          `ONNX export: layer '${layer.name}' produced ${outNames.length} outputs, expected ${node.outputTensors.length}`,
        );
      }
      node.outputTensors.forEach((t, i) => {
        values.set(t.id, { name: outNames[i]!, shape: t.shape });
      });
    }
    return modelOutputs.map((t) => values.get(t.id)!);
  }

  private initializer(layer: LayerLike, key: string, make: () => string): string {
    let m = this.initializers.get(layer);
    if (!m) this.initializers.set(layer, (m = new Map()));
    let name = m.get(key);
    if (!name) m.set(key, (name = make()));
    return name;
  }

  /** Nodes reachable backwards from `outputs`, producers first (iterative DFS: detectors are deep). */
  private topologicalNodes(outputs: SymTensor[], known: Map<number, Value>): GraphNode[] {
    const order: GraphNode[] = [];
    const state = new Map<GraphNode, 'open' | 'done'>();
    const stack: Array<{ node: GraphNode; next: number }> = [];
    const push = (t: SymTensor) => {
      if (known.has(t.id)) return;
      const layer = t.sourceLayer;
      if (layer.getClassName() === 'InputLayer') {
        throw new Error(`ONNX export: input '${layer.name}' is not one of the model's inputs`);
      }
      const node = layer.inboundNodes[t.nodeIndex]!;
      const s = state.get(node);
      if (s === 'done') return;
      if (s === 'open') throw new Error(`ONNX export: cycle through layer '${layer.name}'`);
      state.set(node, 'open');
      stack.push({ node, next: 0 });
    };
    for (const t of outputs) {
      push(t);
      while (stack.length > 0) {
        const top = stack[stack.length - 1]!;
        if (top.next < top.node.inputTensors.length) {
          push(top.node.inputTensors[top.next++]!);
        } else {
          stack.pop();
          state.set(top.node, 'done');
          order.push(top.node);
        }
      }
    }
    return order;
  }
}

/**
 * Writes `model` (a tfjs functional `LayersModel`) as ONNX opset 17. Rank-4
 * inputs become NCHW float32 `[N, C, H, W]` with symbolic N, H, W; the graph runs
 * in NCHW; rank-4 outputs come back NHWC unless `nchwOutputs`.
 * Throws `UnsupportedLayerError` naming the layer and its class for anything it
 * cannot express.
 */
export function exportOnnx(model: FunctionalModelLike, options: OnnxExportOptions = {}): OnnxExportResult {
  const walker = new GraphWalker(options.foldBatchNorm !== false);
  const { g } = walker;
  const modelInputs = model.inputs as SymTensor[];
  const modelOutputs = model.outputs as SymTensor[];
  const inputNames = options.inputNames ?? model.inputNames ?? modelInputs.map((_, i) => `input_${i}`);
  const outputNames = options.outputNames ?? model.outputNames;
  if (inputNames.length !== modelInputs.length || outputNames.length !== modelOutputs.length) {
    throw new Error(
      `ONNX export: the model has ${modelInputs.length} inputs / ${modelOutputs.length} outputs, ` +
        `names given for ${inputNames.length} / ${outputNames.length}`,
    );
  }
  for (const n of outputNames) g.reserve(n);

  const dynamic = options.dynamicSpatial === true;
  const inputInfos: OnnxValueInfo[] = [];
  const inputValues = modelInputs.map((t, i) => {
    const name = g.reserve(inputNames[i]!);
    const multi = modelInputs.length > 1 ? `_${i}` : '';
    const dims = t.shape.map((d, axis): number | string => {
      if (axis === 0) return options.batchSize ?? 'N';
      if (t.shape.length === 4 && axis < 3 && (d == null || dynamic))
        return `${axis === 1 ? 'H' : 'W'}${multi}`;
      if (d == null) return `${name}_d${axis}`;
      return d;
    });
    inputInfos.push({ name, shape: t.shape.length === 4 ? NHWC_TO_NCHW.map((a) => dims[a]!) : dims });
    return { name, shape: t.shape } satisfies Value;
  });

  const outs = walker.convertModel(model, inputValues, '');

  const outputInfos: OnnxValueInfo[] = outs.map((v, i) => {
    const name = outputNames[i]!;
    const keepNchw = options.nchwOutputs === true && v.shape.length === 4;
    const src = keepNchw ? v.name : toTfLayout(g, v, `${name}/output`);
    g.node('Identity', [src], `${name}/output`, {}, [name]);
    const params = options.outputDimParams?.[name] ?? {};
    const dims = v.shape.map(
      (d, axis) => params[axis] ?? (axis === 0 ? (options.batchSize ?? 'N') : (d ?? `${name}_d${axis}`)),
    );
    return { name, shape: keepNchw ? NHWC_TO_NCHW.map((a) => dims[a]!) : dims };
  });

  if (options.extend) {
    outputInfos.push(
      ...options.extend(g, {
        inputs: inputInfos.map((i) => i.name),
        outputs: outputInfos.map((o) => o.name),
      }),
    );
  }

  const proto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'bmc',
    producerVersion: options.producerVersion ?? '',
    docString: options.docString ?? `Exported from the TensorFlow.js model '${model.name}' by @bmc/export`,
    graph: {
      name: options.graphName ?? model.name,
      node: g.nodes,
      initializer: g.initializers,
      input: inputInfos.map(valueInfo),
      output: outputInfos.map(valueInfo),
    },
    metadataProps: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  const bytes = ModelProto.encode(ModelProto.fromObject(proto)).finish();

  const opCounts: Record<string, number> = {};
  for (const n of g.nodes as Array<{ opType: string }>) opCounts[n.opType] = (opCounts[n.opType] ?? 0) + 1;
  let parameters = 0;
  for (const t of g.initializers as Array<{ dataType: number; dims: number[] }>) {
    if (t.dataType === 1) parameters += t.dims.reduce((a, b) => a * b, 1);
  }
  return {
    bytes,
    summary: {
      nodes: g.nodes.length,
      initializers: g.initializers.length,
      parameters,
      foldedBatchNorms: walker.foldedBatchNorms,
      opCounts,
      inputs: inputInfos,
      outputs: outputInfos,
    },
  };
}
