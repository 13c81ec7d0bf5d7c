import { withoutTape } from '@bmc/engine';
import type * as tf from '@tensorflow/tfjs';

/**
 * The training-mode forward pass of a functional tfjs model, as `model.apply(x, { training: true })`
 * computes it (same layers, same calls, same order), with two memory rules that tfjs-layers does not
 * apply in training mode:
 * - a layer's output is disposed as soon as every layer that reads it has run (tfjs keeps all of them
 *   until the step ends; tensors the backward pass needs are separate, reference-counted copies on the
 *   gradient tape, so they survive);
 * - layers whose output does not depend on any trainable weight (frozen stages fed by the image) run
 *   with the gradient tape off: their tensors would be taped and kept to the end of the step although no
 *   gradient ever flows through them.
 * Outputs in the model's output order.
 */

export interface GraphNode {
  outboundLayer: tf.layers.Layer;
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
  callArgs?: Record<string, unknown>;
}

export interface TrainingGraph {
  nodes: GraphNode[];
  /** Layers each symbolic tensor feeds. */
  consumers: Map<number, number>;
  /** Nodes whose output depends on a trainable weight (run with the tape on). */
  taped: Set<GraphNode>;
}

const orders = new WeakMap<tf.LayersModel, Omit<TrainingGraph, 'taped'>>();

/**
 * The model's layer calls in execution order, how many calls read each symbolic tensor, and which calls
 * run on the gradient tape. The order is cached per model; the taped set is recomputed on every call,
 * because layers are frozen and unfrozen during a run (model.backbone.freezeSteps).
 */
export function trainingGraph(model: tf.LayersModel): TrainingGraph {
  let order = orders.get(model);
  if (!order) {
    const byDepth = (model as unknown as { nodesByDepth: Record<string, GraphNode[]> }).nodesByDepth;
    const depths = Object.keys(byDepth)
      .map(Number)
      .sort((a, b) => b - a);
    const nodes = depths
      .flatMap((d) => byDepth[String(d)]!)
      .filter((n) => n.outboundLayer.getClassName() !== 'InputLayer');
    const consumers = new Map<number, number>();
    for (const n of nodes)
      for (const t of n.inputTensors) consumers.set(t.id, (consumers.get(t.id) ?? 0) + 1);
    order = { nodes, consumers };
    orders.set(model, order);
  }
  const dependsOnWeights = new Set<number>();
  const taped = new Set<GraphNode>();
  for (const n of order.nodes) {
    const trainable = n.outboundLayer.trainable && n.outboundLayer.trainableWeights.length > 0;
    if (trainable || n.inputTensors.some((t) => dependsOnWeights.has(t.id))) {
      taped.add(n);
      for (const t of n.outputTensors) dependsOnWeights.add(t.id);
    }
  }
  return { ...order, taped };
}

export function applyForTraining(model: tf.LayersModel, x: tf.Tensor): tf.Tensor[] {
  const { nodes, consumers, taped } = trainingGraph(model);
  if (model.inputs.length !== 1) throw new Error('applyForTraining: the model must have one input');
  const values = new Map<number, tf.Tensor>([[model.inputs[0]!.id, x]]);
  // Pending reads of each concrete tensor (a layer may return its input unchanged).
  const pending = new Map<number, number>();
  const keep = new Set<number>([x.id]);
  const outputIds = new Set(model.outputs.map((o) => o.id));
  for (const n of nodes) {
    const inputs = n.inputTensors.map((t) => {
      const v = values.get(t.id);
      if (!v)
        throw new Error(
          `applyForTraining: input ${t.name} of layer ${n.outboundLayer.name} was not computed`,
        );
      return v;
    });
    const kwargs = { ...(n.callArgs ?? {}), training: true };
    delete (kwargs as { mask?: unknown }).mask;
    const call = () => n.outboundLayer.apply(inputs, kwargs) as tf.Tensor | tf.Tensor[];
    const out = taped.has(n) ? call() : withoutTape(call);
    const outs = Array.isArray(out) ? out : [out];
    n.outputTensors.forEach((sym, i) => {
      const v = outs[i]!;
      values.set(sym.id, v);
      pending.set(v.id, (pending.get(v.id) ?? 0) + (consumers.get(sym.id) ?? 0));
      if (outputIds.has(sym.id)) keep.add(v.id);
    });
    for (const t of n.inputTensors) {
      const v = values.get(t.id);
      if (!v) continue;
      const left = (pending.get(v.id) ?? 1) - 1;
      pending.set(v.id, left);
      if (left <= 0 && !keep.has(v.id)) {
        values.delete(t.id);
        v.dispose();
      }
    }
  }
  return model.outputs.map((o) => {
    const v = values.get(o.id);
    if (!v) throw new Error(`applyForTraining: output ${o.name} was not computed`);
    return v;
  });
}
