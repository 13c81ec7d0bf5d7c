import { UsageError } from '@bmc/core';
import type * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import { trainingGraph } from './lean-forward.js';

/**
 * The memory plan of a training step on tfjs-wasm: how much of the wasm heap one forward/backward pass
 * needs, estimated before the first step, so that a configuration that cannot fit is refused with the
 * ways out instead of aborting the wasm module mid-step ("memory access out of bounds").
 *
 * tfjs-wasm keeps every tensor in one WebAssembly memory, which grows to the step's peak and never
 * shrinks, and wasm32 caps it at 4 GiB. The peak of a step is the model's weights, gradients and
 * optimizer state plus the activations of one pass (one micro-batch). The activation term is modelled
 * from the network itself: the output of every layer call at the configuration's input side (shape
 * inference over the model graph, nothing allocated), split into layers on the gradient tape (their
 * outputs may be kept for the backward pass) and frozen layers fed by the image (run off the tape:
 * their outputs are transient). The coefficients were calibrated by measuring the heap
 * (`bench/memory.bench.mjs`: tiny preset at 256 and 384 px, thesis preset at 512 px, lean step, see
 * `bench/measured/train-memory.json`); `test/memory-plan.test.ts` checks the estimate against measured
 * heaps within {@link ESTIMATE_TOLERANCE}.
 */

/** wasm32's addressable memory: tfjs-wasm's heap cannot grow past it. */
export const WASM_HEAP_LIMIT_BYTES = 4 * 2 ** 30;

/** Relative accuracy of {@link estimateStepHeap} against measured heaps (tested). */
export const ESTIMATE_TOLERANCE = 0.25;

/** Heap of the wasm runtime before any tensor (measured: 16 MiB with tfjs-backend-wasm 4.22). */
const RUNTIME_BYTES = 16 * 2 ** 20;
/** Heap bytes per byte of layer output on the gradient tape (calibrated, see above). */
const TAPED_FACTOR = 1;
/** Heap bytes per byte of frozen-layer output (transient; calibrated). */
const FROZEN_FACTOR = 0.1;
/** Loss tensors per anchor and class kept for the backward pass (focal loss, box and IoU terms). */
const LOSS_FLOATS_PER_ANCHOR_CLASS = 12;
const LOSS_FLOATS_PER_ANCHOR = 40;

export interface StepHeapEstimate {
  /** Network input side (pixels). */
  side: number;
  /** Images in one forward/backward pass (a micro-batch, or a replica's share). */
  imagesPerPass: number;
  /** Predicted peak of the wasm heap during a step, bytes. */
  heapBytes: number;
  /** Weights, gradients and optimizer state, bytes. */
  stateBytes: number;
  /** Layer outputs of one pass on the gradient tape / in frozen layers, bytes. */
  tapedBytes: number;
  frozenBytes: number;
  /** Anchors of one image at this side. */
  anchors: number;
}

type Shape = (number | null)[];

/** Output shapes of every layer call for an input of `[batch, side, side, 3]` (no tensor is made). */
function layerOutputs(model: tf.LayersModel, side: number, batch: number) {
  const graph = trainingGraph(model);
  const shapes = new Map<number, Shape>([[model.inputs[0]!.id, [batch, side, side, 3]]]);
  const calls: { shapes: Shape[]; taped: boolean }[] = [];
  for (const n of graph.nodes) {
    const inputs = n.inputTensors.map((t) => shapes.get(t.id)!);
    const out = n.outboundLayer.computeOutputShape(inputs.length === 1 ? inputs[0]! : inputs) as
      | Shape
      | Shape[];
    const outs = Array.isArray(out[0]) ? (out as Shape[]) : [out as Shape];
    n.outputTensors.forEach((t, i) => {
      shapes.set(t.id, outs[i]!);
    });
    calls.push({ shapes: outs, taped: graph.taped.has(n) });
  }
  const elements = (s: Shape) => s.reduce<number>((p, d) => p * (d ?? 1), 1);
  let taped = 0;
  let frozen = 0;
  for (const c of calls) {
    const e = c.shapes.reduce((s, sh) => s + elements(sh), 0);
    if (c.taped) taped += e;
    else frozen += e;
  }
  const first = shapes.get(model.outputs[0]!.id)!;
  return { taped, frozen, anchors: (first[1] ?? 0) as number, classes: (first[2] ?? 1) as number };
}

/** Images per forward/backward pass: the micro-batch, within one replica's share of the batch. */
export function imagesPerPass(config: TrainConfig): number {
  const { batchSize, microBatch } = config.optim;
  const share = Math.ceil(batchSize / Math.max(1, config.run.replicas));
  return microBatch > 0 ? Math.min(microBatch, share) : share;
}

/** Predicted peak wasm heap of one training step of `model` (see the module comment). */
export function estimateStepHeap(
  model: tf.LayersModel,
  o: { side: number; imagesPerPass: number; optimizerSlots: number },
): StepHeapEstimate {
  const out = layerOutputs(model, o.side, o.imagesPerPass);
  const params = model.countParams();
  const trainable = model.trainableWeights.reduce(
    (s, w) => s + w.shape.reduce<number>((p, d) => p * (d ?? 1), 1),
    0,
  );
  const stateBytes = 4 * (params + trainable * (1 + o.optimizerSlots));
  const tapedBytes = 4 * out.taped;
  const frozenBytes = 4 * out.frozen;
  const lossBytes =
    4 * o.imagesPerPass * out.anchors * (LOSS_FLOATS_PER_ANCHOR_CLASS * out.classes + LOSS_FLOATS_PER_ANCHOR);
  const heapBytes =
    RUNTIME_BYTES + stateBytes + TAPED_FACTOR * tapedBytes + FROZEN_FACTOR * frozenBytes + lossBytes;
  return {
    side: o.side,
    imagesPerPass: o.imagesPerPass,
    heapBytes,
    stateBytes,
    tapedBytes,
    frozenBytes,
    anchors: out.anchors,
  };
}

/** A configuration whose training step cannot fit in the wasm heap (exit code 2). */
export class MemoryPlanError extends UsageError {
  override name = 'MemoryPlanError';
  constructor(
    message: string,
    readonly estimate: StepHeapEstimate,
  ) {
    super(message);
  }
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/**
 * The memory plan of a run on the wasm backend: the estimate, and a {@link MemoryPlanError} naming it,
 * the 4 GiB limit and the ways out when the step cannot fit. Other backends are not capped (undefined).
 */
export function planTrainingMemory(
  config: TrainConfig,
  model: tf.LayersModel,
  backend: string,
): StepHeapEstimate | undefined {
  if (backend !== 'wasm') return undefined;
  const images = imagesPerPass(config);
  const side = config.data.imageSize;
  const estimate = estimateStepHeap(model, {
    side,
    imagesPerPass: images,
    optimizerSlots: config.optim.type === 'adamw' ? 2 : 1,
  });
  if (estimate.heapBytes <= WASM_HEAP_LIMIT_BYTES) return estimate;
  // The largest side that fits with one image per pass, a multiple of 32 as imageSize must be.
  let fits = 0;
  for (let s = 32; s <= side; s += 32) {
    const e = estimateStepHeap(model, {
      side: s,
      imagesPerPass: 1,
      optimizerSlots: config.optim.type === 'adamw' ? 2 : 1,
    });
    if (e.heapBytes <= WASM_HEAP_LIMIT_BYTES) fits = s;
    else break;
  }
  const ways = [
    fits > 0
      ? `a smaller network input: --set data.imageSize=${fits} or less (with data.sampling crops, the crop side: the images keep their resolution and are trained on in crops)`
      : 'a smaller network input (data.imageSize)',
    ...(images > 1
      ? [
          'one image per forward/backward pass: --set optim.microBatch=1 (same gradients when BatchNorm is frozen)',
        ]
      : []),
    'a smaller model (--preset tiny, or model.backbone.depth / model.backbone.widthMultiplier / fewer model.neck.levels)',
    'a backend without the 4 GiB cap (run.backend tfjs-node, where it installs)',
  ];
  throw new MemoryPlanError(
    `memory plan: one training step needs about ${gib(estimate.heapBytes)} of tfjs-wasm heap ` +
      `(${images} image(s) of ${side}x${side} per pass, ${config.model.backbone.depth}-layer backbone), ` +
      `more than its ${gib(WASM_HEAP_LIMIT_BYTES)} limit; training would abort mid-step. Ways out: ${ways.join('; ')}.`,
    estimate,
  );
}

/** True for the errors a wasm module throws when its heap is exhausted or it aborted. */
export function isWasmAbort(err: unknown): boolean {
  if (err instanceof WebAssembly.RuntimeError) return true;
  const msg = err instanceof Error ? err.message : String(err);
  return /memory access out of bounds|^Aborted\(|Cannot enlarge memory|out of memory|OOM/i.test(msg);
}
