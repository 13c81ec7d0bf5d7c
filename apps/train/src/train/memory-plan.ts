import { UsageError } from '@bmc/core';
import type * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import { trainingGraph } from './lean-forward.js';

/**
 * The memory plan of a training step on tfjs-wasm: how much of the wasm heap one forward/backward pass
 * needs, estimated before the first step, so that a configuration that cannot fit is refused with the
 * ways out instead of aborting the wasm module mid-step ("memory access out of bounds").
 *
 * tfjs-wasm keeps every tensor in one WebAssembly memory, which grows to the step's peak (in 20% steps,
 * 96 MiB steps above 480 MiB) and never shrinks; wasm32 caps it at 4 GiB. The peak of a lean step
 * (lean-forward.ts + @bmc/engine's leanVariableGrads and installLeanTape) is the weights, gradients and
 * optimizer state plus what one forward/backward pass keeps: the outputs of the layers whose outputs the
 * backward pass reads (ReLU, zero padding, attention products; convolution and BatchNorm outputs are
 * not kept) with the gradients in flight, more for batch-statistics BatchNorm, and the loss's per-anchor
 * tensors. Those outputs are counted from the network itself: shape inference over the model graph at the
 * configuration's input side (nothing is allocated), only for layers on the gradient tape (frozen layers
 * fed by the image run off it). The two factors were calibrated with `bench/memory.bench.mjs` (peak
 * tensor bytes of one SGD/AdamW step: thesis preset at 512 px, tiny preset at 384 px; recorded in
 * `bench/measured/train-memory-thesis.json`). The estimate is a steady-state step's (the optimizer state
 * exists during the backward pass); the bench measures a first step, whose optimizer state is made after
 * it, so for the thesis preset the estimate runs about 10-17% above the bench. `test/memory-plan.test.ts`
 * checks it against peaks measured out of sample (tiny at 224 and 320 px) and the recorded thesis peaks
 * (256, 512 and 800 px) within {@link ESTIMATE_TOLERANCE}.
 */

/** wasm32's addressable memory: tfjs-wasm's heap cannot grow past it. */
export const WASM_HEAP_LIMIT_BYTES = 4 * 2 ** 30;

/** Relative accuracy of {@link estimateStepHeap}'s peak against measured peaks (tested). */
export const ESTIMATE_TOLERANCE = 0.2;

/**
 * Peak bytes per byte of output of the layers whose outputs the lean step keeps for the backward pass
 * (ReLU, zero padding, attention products: see lean-forward.ts and @bmc/engine's installLeanTape), on the
 * gradient tape. Above 1: the gradients in flight and the largest transient outputs ride on them.
 * Calibrated on the thesis preset at 512 px (bench/measured/train-memory-thesis.json).
 */
const KEPT_FACTOR = 2.57;
/** Per byte of batch-statistics BatchNormalization output (it keeps its input and centred input); tiny at 384 px. */
const BATCH_NORM_FACTOR = 2.1;
/** Loss tensors per anchor and class / per anchor kept for the backward pass (focal, box and IoU terms). */
const LOSS_FLOATS_PER_ANCHOR_CLASS = 12;
const LOSS_FLOATS_PER_ANCHOR = 40;
/** The wasm runtime's own share of the heap beside tensors (stack, allocator bookkeeping). */
const RUNTIME_BYTES = 4 * 2 ** 20;
/** tfjs-wasm 4.22's initial heap; emscripten grows it by 20% at a time, by 96 MiB above 480 MiB. */
const INITIAL_HEAP_BYTES = 16 * 2 ** 20;
/** Headroom kept below the 4 GiB limit for allocator fragmentation. */
const FRAGMENTATION_MARGIN_BYTES = 128 * 2 ** 20;

export interface StepHeapEstimate {
  /** Network input side (pixels). */
  side: number;
  /** Images in one forward/backward pass (a micro-batch, or a replica's share). */
  imagesPerPass: number;
  /** Predicted peak of live tensor bytes (tf.memory().numBytes at its highest during the step). */
  peakBytes: number;
  /** The size the wasm heap grows to for that peak (emscripten's growth steps). */
  heapBytes: number;
  /** Weights, gradients and optimizer state, bytes. */
  stateBytes: number;
  /** Output bytes of one pass of the layers whose outputs the step keeps / of batch-statistics BatchNorm. */
  keptBytes: number;
  batchNormBytes: number;
  /** Anchors of one image at this side. */
  anchors: number;
}

type Shape = (number | null)[];

/** What the layer calls of one pass produce for an input of `[batch, side, side, 3]` (no tensor is made). */
function layerOutputs(model: tf.LayersModel, side: number, batch: number) {
  const graph = trainingGraph(model);
  const shapes = new Map<number, Shape>([[model.inputs[0]!.id, [batch, side, side, 3]]]);
  const elements = (s: Shape) => s.reduce<number>((p, d) => p * (d ?? 1), 1);
  let kept = 0;
  let batchNorm = 0;
  for (const n of graph.nodes) {
    const inputs = n.inputTensors.map((t) => shapes.get(t.id)!);
    const out = n.outboundLayer.computeOutputShape(inputs.length === 1 ? inputs[0]! : inputs) as
      | Shape
      | Shape[];
    const outs = Array.isArray(out[0]) ? (out as Shape[]) : [out as Shape];
    n.outputTensors.forEach((t, i) => {
      shapes.set(t.id, outs[i]!);
    });
    if (!graph.taped.has(n)) continue; // frozen layers run off the tape: their outputs are transient
    const e = outs.reduce((s, sh) => s + elements(sh), 0);
    const kind = n.outboundLayer.getClassName();
    if (kind === 'ReLU' || kind === 'ZeroPadding2D' || kind === 'Multiply') kept += e;
    else if (kind === 'BatchNormalization') batchNorm += e;
  }
  const first = shapes.get(model.outputs[0]!.id)!;
  return { kept, batchNorm, anchors: (first[1] ?? 0) as number, classes: (first[2] ?? 1) as number };
}

/** The size emscripten's heap growth reaches for `bytes` (tfjs-wasm 4.22's policy, from 16 MiB). */
function grownHeap(bytes: number): number {
  let size = INITIAL_HEAP_BYTES;
  while (size < bytes && size < WASM_HEAP_LIMIT_BYTES) {
    const next = Math.ceil(Math.min(size * 1.2, size + 96 * 2 ** 20) / 65536) * 65536;
    size = Math.min(WASM_HEAP_LIMIT_BYTES, next);
  }
  return Math.max(size, Math.min(bytes, WASM_HEAP_LIMIT_BYTES));
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
  const keptBytes = 4 * out.kept;
  const batchNormBytes = 4 * out.batchNorm;
  const lossBytes =
    4 * o.imagesPerPass * out.anchors * (LOSS_FLOATS_PER_ANCHOR_CLASS * out.classes + LOSS_FLOATS_PER_ANCHOR);
  const peakBytes = stateBytes + KEPT_FACTOR * keptBytes + BATCH_NORM_FACTOR * batchNormBytes + lossBytes;
  return {
    side: o.side,
    imagesPerPass: o.imagesPerPass,
    peakBytes,
    heapBytes: grownHeap(peakBytes + RUNTIME_BYTES),
    stateBytes,
    keptBytes,
    batchNormBytes,
    anchors: out.anchors,
  };
}

/** Whether a step with this estimate fits in the wasm heap, with room for fragmentation. */
export function fitsWasmHeap(e: StepHeapEstimate): boolean {
  return e.peakBytes + RUNTIME_BYTES <= WASM_HEAP_LIMIT_BYTES - FRAGMENTATION_MARGIN_BYTES;
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
  if (fitsWasmHeap(estimate)) return estimate;
  // The largest side that fits with one image per pass, a multiple of 32 as imageSize must be.
  let fits = 0;
  for (let s = 32; s <= side; s += 32) {
    const e = estimateStepHeap(model, {
      side: s,
      imagesPerPass: 1,
      optimizerSlots: config.optim.type === 'adamw' ? 2 : 1,
    });
    if (fitsWasmHeap(e)) fits = s;
    else break;
  }
  const ways = [
    fits > 0
      ? `a smaller network input: --set data.imageSize=${fits} or less`
      : 'a smaller network input (data.imageSize)',
    ...(images > 1
      ? [
          'one image per forward/backward pass: --set optim.microBatch=1 (the same gradients when BatchNorm is frozen)',
        ]
      : []),
    ...(config.data.sampling !== 'crops'
      ? [
          'native-resolution crops: --set data.sampling=crops (data.imageSize is then the crop side: the cells keep their size in pixels however small the crops)',
        ]
      : []),
    'a smaller model: --preset tiny, or a smaller model.backbone.depth / model.backbone.widthMultiplier, fewer model.neck.levels',
  ];
  throw new MemoryPlanError(
    `memory plan: one training step needs about ${gib(estimate.peakBytes)} of tfjs-wasm heap ` +
      `(${images} image(s) of ${side}x${side} per pass, ${config.model.backbone.depth}-layer backbone), ` +
      `more than its ${gib(WASM_HEAP_LIMIT_BYTES)} limit; training would abort mid-step. Ways out: ${ways.join('; ')}.`,
    estimate,
  );
}

/** One line for the run's output: the estimate against the limit. */
export function describeStepHeap(e: StepHeapEstimate): string {
  return (
    `memory plan: a step needs about ${gib(e.peakBytes)} of the ${gib(WASM_HEAP_LIMIT_BYTES)} tfjs-wasm heap ` +
    `(${e.imagesPerPass} image(s) of ${e.side}x${e.side} per forward/backward pass)`
  );
}
