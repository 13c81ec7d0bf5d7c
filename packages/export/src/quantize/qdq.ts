/**
 * Rewrites a float ONNX graph into onnxruntime's QDQ form: every quantised
 * tensor gets QuantizeLinear -> DequantizeLinear, conv weights are int8
 * per output channel behind a DequantizeLinear (axis 0), biases int32. The graph
 * stays a valid float graph that any ONNX runtime can run; onnxruntime fuses the
 * `DQ -> Conv -> Q` groups into QLinearConv (and Add into QLinearAdd, and runs
 * MaxPool / Resize on uint8) at session creation.
 *
 * What is quantised: Conv (all of them: backbone, neck, heads), Add whose inputs
 * both come from quantised ops (residuals, top-down sums), and MaxPool / Resize
 * fed by a quantised op (they keep their input's scale, so onnxruntime drops
 * their Q/DQ). Everything else stays float: attention (pooling, Gemm, Sigmoid,
 * Mul), the heads' reshapes and concatenations, and decoding / NMS when the
 * file carries them.
 */

import {
  attr,
  consumersOf,
  DT,
  floatValues,
  type GraphObj,
  int64Values,
  type NodeObj,
  type TensorObj,
  tensor,
} from './graph.js';
import {
  type ActivationParams,
  activationParams,
  quantizeBias,
  quantizeWeightsPerChannel,
  type Range,
} from './ranges.js';

/** What `planQdq` decided, for calibration and for `applyQdq`. */
export interface QdqPlan {
  /** Conv and Add nodes computed on int8 / uint8. */
  quantized: Set<NodeObj>;
  /** MaxPool / Resize nodes that run on their input's uint8 values. */
  passThrough: Set<NodeObj>;
  /** ReLU nodes absorbed into the QuantizeLinear of their producer's output (zero point 0). */
  fusedRelus: Map<NodeObj, NodeObj>;
  /**
   * Tensors that get their own scale from calibration (in graph order), named as in the
   * float graph (a fused ReLU's output, not the conv's).
   */
  calibrated: string[];
  /** Tensors that reuse another tensor's scale (pass-through ops' outputs -> their input). */
  shared: Map<string, string>;
}

export interface QdqOptions {
  /**
   * Quantise the output of convs whose consumers are all float ops (the heads' last convs,
   * whose logits and box deltas go to the float decoding). Default true: onnxruntime only
   * fuses a conv into QLinearConv when its output is quantised too; false keeps those
   * outputs in float, with the conv itself running in float on dequantised weights.
   */
  quantizeHeadOutputs?: boolean;
  /**
   * Convs with fewer input channels than this stay float (default 4: the stem conv on the RGB
   * image). With 3 input channels an int8 GEMM has too short an inner dimension to gain, and
   * onnxruntime's float stem kernel is faster: the tiny model's int8 stem took a third of its
   * network time at 320 x 320.
   */
  minInputChannels?: number;
}

const PASS_THROUGH = new Set(['MaxPool', 'Resize']);

/**
 * Folds constant zero `Pad` nodes (tfjs ZeroPadding2D) into the pads of the convs they feed, so
 * that the conv's input is the quantised tensor itself (QLinearConv pads with the zero point,
 * which is exactly 0.0). Pads feeding anything else stay. Returns how many were folded.
 */
export function foldPadsIntoConvs(graph: GraphObj): number {
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const consumers = consumersOf(graph);
  const outputs = new Set(graph.output.map((o) => o.name));
  const drop = new Set<NodeObj>();
  for (const pad of graph.node) {
    if (pad.opType !== 'Pad' || pad.input.length < 2) continue;
    const mode = attr(pad, 'mode')?.s;
    if (mode && new TextDecoder().decode(mode) !== 'constant') continue;
    if (pad.input[2]) {
      const cv = inits.get(pad.input[2]);
      if (!cv || cv.dataType !== DT.FLOAT || floatValues(cv).some((v) => v !== 0)) continue;
    }
    if (pad.input[3]) continue; // axes input: not what the exporter writes
    const padsInit = inits.get(pad.input[1]!);
    if (!padsInit) continue;
    const p = int64Values(padsInit);
    if (p.length !== 8 || p[0] || p[1] || p[4] || p[5] || p.some((v) => v < 0)) continue;
    const out = pad.output[0]!;
    const users = consumers.get(out) ?? [];
    if (outputs.has(out) || users.length === 0) continue;
    if (!users.every(([n, i]) => n.opType === 'Conv' && i === 0 && !isAutoPad(n))) continue;
    for (const [conv] of users) {
      const cp = attr(conv, 'pads');
      const old = cp?.ints ?? [0, 0, 0, 0];
      const pads = [old[0]! + p[2]!, old[1]! + p[3]!, old[2]! + p[6]!, old[3]! + p[7]!];
      if (cp) cp.ints = pads;
      else (conv.attribute ??= []).push({ name: 'pads', type: 7, ints: pads });
      conv.input[0] = pad.input[0]!;
    }
    drop.add(pad);
  }
  graph.node = graph.node.filter((n) => !drop.has(n));
  const used = new Set(graph.node.flatMap((n) => n.input));
  graph.initializer = graph.initializer.filter((t) => used.has(t.name));
  return drop.size;
}

function isAutoPad(conv: NodeObj): boolean {
  const a = attr(conv, 'auto_pad')?.s;
  return a !== undefined && new TextDecoder().decode(a) !== 'NOTSET';
}

/** Decides which nodes run quantised and which tensors need calibrated ranges. */
export function planQdq(graph: GraphObj, options: QdqOptions = {}): QdqPlan {
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const consumers = consumersOf(graph);
  const graphOutputs = new Set(graph.output.map((o) => o.name));
  const quantized = new Set<NodeObj>();
  const passThrough = new Set<NodeObj>();
  const fusedRelus = new Map<NodeObj, NodeObj>();
  /** Tensors produced by a quantised / pass-through op (after ReLU fusion). */
  const qOut = new Map<string, NodeObj>();

  const minIn = options.minInputChannels ?? 4;
  const isConstWeight = (n: NodeObj) => {
    const w = inits.get(n.input[1] ?? '');
    const b = n.input[2] ? inits.get(n.input[2]) : undefined;
    return (
      w?.dataType === DT.FLOAT &&
      w.dims?.length === 4 &&
      w.dims[1]! >= minIn &&
      (n.input[2] ? b?.dataType === DT.FLOAT : true) &&
      (attr(n, 'group')?.i ?? 1) === 1
    );
  };
  /** The value the op's quantised output is: its single ReLU consumer's output when there is one. */
  const outputOf = (n: NodeObj): string => {
    const out = n.output[0]!;
    const users = consumers.get(out) ?? [];
    const relu = users.length === 1 && users[0]![0].opType === 'Relu' ? users[0]![0] : undefined;
    if (relu && !graphOutputs.has(out)) {
      fusedRelus.set(relu, n);
      return relu.output[0]!;
    }
    return out;
  };

  for (const n of graph.node) {
    if (n.opType === 'Conv' && isConstWeight(n)) {
      quantized.add(n);
      qOut.set(outputOf(n), n);
    } else if (n.opType === 'Add' && n.input.length === 2 && n.input.every((i) => qOut.has(i))) {
      quantized.add(n);
      qOut.set(outputOf(n), n);
    } else if (PASS_THROUGH.has(n.opType) && qOut.has(n.input[0]!)) {
      passThrough.add(n);
      qOut.set(n.output[0]!, n);
    }
  }

  // A quantised op's output is quantised when some consumer is quantised (or, with
  // quantizeHeadOutputs, always), not when it is a graph output (those stay float as written).
  const isQuantizedUse = (name: string) =>
    (consumers.get(name) ?? []).some(([c]) => quantized.has(c) || passThrough.has(c));
  const calibrated: string[] = [];
  const shared = new Map<string, string>();
  const seen = new Set<string>();
  const need = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    calibrated.push(name);
  };
  for (const n of graph.node) {
    if (quantized.has(n)) {
      const acts = n.opType === 'Conv' ? [n.input[0]!] : n.input;
      acts.forEach(need);
    }
  }
  for (const [name, producer] of qOut) {
    if (graphOutputs.has(name)) continue;
    if (passThrough.has(producer)) {
      // Chains (MaxPool -> Resize) share the first producer's parameters.
      let src = producer.input[0]!;
      for (let p = qOut.get(src); p && passThrough.has(p); p = qOut.get(src)) src = p.input[0]!;
      shared.set(name, src);
      continue;
    }
    if (options.quantizeHeadOutputs !== false || isQuantizedUse(name)) need(name);
  }
  // A pass-through op's input is quantised with the producer's parameters: make sure it is calibrated.
  for (const src of shared.values()) need(src);
  // Fused ReLUs whose output ends up float (graph output or not quantised) are not fused after all.
  const quantOut = new Set([...calibrated, ...shared.keys()]);
  for (const [relu] of fusedRelus) if (!quantOut.has(relu.output[0]!)) fusedRelus.delete(relu);
  return { quantized, passThrough, fusedRelus, calibrated, shared };
}

/** Summary of a rewrite. */
export interface QdqSummary {
  quantizedConvs: number;
  quantizedAdds: number;
  passThrough: number;
  fusedRelus: number;
  quantizedTensors: number;
  floatConvs: number;
}

/**
 * Applies `plan` with calibrated `ranges` (by tensor name): inserts the Q/DQ pairs and the
 * quantised weights, removes fused ReLUs and float weights nothing reads any more.
 */
export function applyQdq(graph: GraphObj, plan: QdqPlan, ranges: Map<string, Range>): QdqSummary {
  const inits = new Map(graph.initializer.map((t) => [t.name, t]));
  const newInits: TensorObj[] = [];
  const used = new Set<string>([
    ...graph.node.flatMap((n) => [...n.input, ...n.output]),
    ...graph.input.map((i) => i.name),
    ...inits.keys(),
  ]);
  const fresh = (base: string) => {
    let n = base;
    for (let i = 1; used.has(n); i++) n = `${base}_${i}`;
    used.add(n);
    return n;
  };

  // 1. Fuse ReLUs: the producer writes the ReLU's output name; the QuantizeLinear (zero point 0) clamps.
  for (const [relu, producer] of plan.fusedRelus) producer.output[0] = relu.output[0]!;
  const nodes = graph.node.filter((n) => !plan.fusedRelus.has(n));

  // 2. Activation parameters.
  const params = new Map<string, { p: ActivationParams; scale: string; zp: string }>();
  const paramsOf = (name: string) => {
    const src = plan.shared.get(name) ?? name;
    let e = params.get(src);
    if (!e) {
      const range = ranges.get(src);
      if (!range) throw new Error(`quantize: no calibrated range for tensor '${src}'`);
      const p = activationParams(range);
      e = {
        p,
        scale: fresh(`${src}/scale`),
        zp: fresh(`${src}/zero_point`),
      };
      newInits.push(
        tensor(e.scale, DT.FLOAT, [], new Float32Array([p.scale])),
        tensor(e.zp, DT.UINT8, [], new Uint8Array([p.zeroPoint])),
      );
      params.set(src, e);
    }
    return e;
  };
  const qTensors = [...plan.calibrated, ...plan.shared.keys()];
  const qSet = new Set(qTensors);

  // 3. New node list: Q right after a quantised tensor is produced, one DQ per consumer right before it.
  const out: NodeObj[] = [];
  const qName = new Map<string, string>();
  /** DequantizeLinear output -> the float tensor it stands for. */
  const dqSource = new Map<string, string>();
  const emitQ = (name: string) => {
    const e = paramsOf(name);
    const q = fresh(`${name}/quantized`);
    out.push({
      name: fresh(`${name}/QuantizeLinear`),
      opType: 'QuantizeLinear',
      input: [name, e.scale, e.zp],
      output: [q],
    });
    qName.set(name, q);
  };
  const dq = (name: string): string => {
    const e = paramsOf(name);
    const d = fresh(`${name}/dequantized`);
    out.push({
      name: fresh(`${name}/DequantizeLinear`),
      opType: 'DequantizeLinear',
      input: [qName.get(name)!, e.scale, e.zp],
      output: [d],
    });
    dqSource.set(d, name);
    return d;
  };
  for (const i of graph.input) if (qSet.has(i.name)) emitQ(i.name);

  const weightCache = new Map<string, { q: string; scales: Float32Array; scale: string; zp: string }>();
  const summary: QdqSummary = {
    quantizedConvs: 0,
    quantizedAdds: 0,
    passThrough: plan.passThrough.size,
    fusedRelus: plan.fusedRelus.size,
    quantizedTensors: qTensors.length,
    floatConvs: 0,
  };
  for (const n of nodes) {
    // Inputs that are quantised tensors: read through a dedicated DequantizeLinear
    // (onnxruntime's QDQ node groups want a DQ per consumer).
    n.input = n.input.map((name) => (qName.has(name) ? dq(name) : name));
    if (plan.quantized.has(n) && n.opType === 'Conv') {
      const wName = n.input[1]!;
      const srcW = wName;
      let w = weightCache.get(srcW);
      if (!w) {
        const t = inits.get(srcW)!;
        const cout = t.dims![0]!;
        const { data, scales } = quantizeWeightsPerChannel(floatValues(t), cout);
        const q = fresh(`${srcW}/int8`);
        const scale = fresh(`${srcW}/scale`);
        const zp = fresh(`${srcW}/zero_point`);
        newInits.push(
          tensor(q, DT.INT8, t.dims!, data),
          tensor(scale, DT.FLOAT, [cout], scales),
          tensor(zp, DT.INT8, [cout], new Int8Array(cout)),
        );
        weightCache.set(srcW, (w = { q, scales, scale, zp }));
      }
      const wd = fresh(`${srcW}/dequantized`);
      out.push({
        name: fresh(`${srcW}/DequantizeLinear`),
        opType: 'DequantizeLinear',
        input: [w.q, w.scale, w.zp],
        output: [wd],
        attribute: [{ name: 'axis', type: 2, i: 0 }],
      });
      n.input[1] = wd;
      const xSrc = dqSource.get(n.input[0]!);
      if (n.input[2] && xSrc) {
        const b = inits.get(n.input[2])!;
        const xScale = paramsOf(xSrc).p.scale;
        const { data, scales } = quantizeBias(floatValues(b), Math.fround(xScale), w.scales);
        const bq = fresh(`${b.name}/int32`);
        const bs = fresh(`${b.name}/scale`);
        const bz = fresh(`${b.name}/zero_point`);
        newInits.push(
          tensor(bq, DT.INT32, [data.length], data),
          tensor(bs, DT.FLOAT, [data.length], scales),
          tensor(bz, DT.INT32, [data.length], new Int32Array(data.length)),
        );
        const bd = fresh(`${b.name}/dequantized`);
        out.push({
          name: fresh(`${b.name}/DequantizeLinear`),
          opType: 'DequantizeLinear',
          input: [bq, bs, bz],
          output: [bd],
          attribute: [{ name: 'axis', type: 2, i: 0 }],
        });
        n.input[2] = bd;
      }
      if (qSet.has(n.output[0]!)) summary.quantizedConvs++;
      else summary.floatConvs++;
    } else if (plan.quantized.has(n)) {
      summary.quantizedAdds++;
    }
    out.push(n);
    for (const o of n.output) if (qSet.has(o)) emitQ(o);
  }

  graph.node = out;
  const stillUsed = new Set(out.flatMap((n) => n.input));
  graph.initializer = [...graph.initializer.filter((t) => stillUsed.has(t.name)), ...newInits];
  return summary;
}
