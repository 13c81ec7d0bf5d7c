import { type ResNetDepth, resnet } from '@bmc/backbone';
import {
  type AnchorConfig,
  type Anchors,
  generateAnchors,
  octaveSizes,
  RETINANET_ASPECT_RATIOS,
} from '@bmc/core';
import { type NeckKind, neck } from '@bmc/neck-pan-attn';
import * as tf from '@tensorflow/tfjs';
import type { LossOptions } from './detection-loss.js';
import { OUTPUT_NAMES, retinanetHead } from './head.js';
import type { PostprocessOptions } from './postprocess.js';

export type DetectorPreset = 'baseline' | 'thesis' | 'tiny';

export interface DetectorConfig {
  /** `[height, width]` fixes the input size (needed for sizes that are not multiples of the largest stride); null: any multiple. */
  inputSize: [number, number] | null;
  backbone: {
    depth: ResNetDepth;
    widthMultiplier: number;
    frozenStages: number;
    frozenBatchNorm: boolean;
  };
  neck: {
    kind: NeckKind;
    /** log2 strides of the output levels, e.g. [2, 3, 4, 5] or [3, 4, 5, 6, 7]. */
    levels: number[];
    channels: number;
    extraFrom: 'p5' | 'c5';
    attentionReduction: number;
  };
  head: {
    numClasses: number;
    numConvs: number;
    iouBranch: boolean;
    priorProbability: number;
  };
  /** Anchor sizes per level; by default RetinaNet's rule (base size 4 x stride, 3 octave scales, ratios 0.5/1/2). */
  anchors: AnchorConfig;
  loss: LossOptions;
  postprocess: PostprocessOptions;
}

/** RetinaNet's anchor rule for any levels: base size 4 x stride, 3 octave scales, ratios 0.5, 1, 2. */
export function anchorConfigForLevels(levels: readonly number[]): AnchorConfig {
  return {
    levels: levels.map((l) => ({ stride: 2 ** l, sizes: octaveSizes(4 * 2 ** l) })),
    aspectRatios: RETINANET_ASPECT_RATIOS,
  };
}

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K];
};
export type DetectorOverrides = DeepPartial<Omit<DetectorConfig, 'anchors'>> & { anchors?: AnchorConfig };

/** torchvision RetinaNet's post-processing defaults, shared by every preset. */
const RETINANET_POSTPROCESS = { scoreThreshold: 0.05, topK: 1000, nmsThreshold: 0.5, maxDetections: 100 };

/**
 * The presets. baseline: torchvision's RetinaNet R50-FPN (P3-P7, P6 from
 * P5, no IoU branch, L1 box loss, plain scores). thesis: the thesis's
 * modules (R50, PAN-attn, IoU branch, GIoU) with bmc's choices where it
 * departs (N2-N5, sqrt(cls*iou); docs/departures.md). tiny: a
 * ResNet18 at width 1/4 with N3-N5 PAN-attn and a 2-conv, 48-channel head,
 * for tests, demos and CPU training (the `bmc` app's `tiny` preset takes its network from here).
 */
export function detectorConfig(preset: DetectorPreset, overrides: DetectorOverrides = {}): DetectorConfig {
  const base: Record<DetectorPreset, Omit<DetectorConfig, 'anchors'>> = {
    baseline: {
      inputSize: null,
      backbone: { depth: 50, widthMultiplier: 1, frozenStages: 1, frozenBatchNorm: true },
      neck: { kind: 'fpn', levels: [3, 4, 5, 6, 7], channels: 256, extraFrom: 'p5', attentionReduction: 16 },
      head: { numClasses: 1, numConvs: 4, iouBranch: false, priorProbability: 0.01 },
      loss: { boxLoss: 'l1', boxWeight: 1, iouWeight: 0 },
      postprocess: { ...RETINANET_POSTPROCESS, scoreMode: 'cls' },
    },
    thesis: {
      inputSize: null,
      backbone: { depth: 50, widthMultiplier: 1, frozenStages: 1, frozenBatchNorm: true },
      neck: {
        kind: 'pan-attn',
        levels: [2, 3, 4, 5],
        channels: 256,
        extraFrom: 'p5',
        attentionReduction: 16,
      },
      head: { numClasses: 1, numConvs: 4, iouBranch: true, priorProbability: 0.01 },
      loss: { boxLoss: 'giou', boxWeight: 1, iouWeight: 1 },
      postprocess: { ...RETINANET_POSTPROCESS, scoreMode: 'sqrt(cls*iou)' },
    },
    tiny: {
      inputSize: null,
      backbone: { depth: 18, widthMultiplier: 0.25, frozenStages: -1, frozenBatchNorm: false },
      // 48 channels: the network `bmc demo` trains and its README figures were measured with.
      neck: { kind: 'pan-attn', levels: [3, 4, 5], channels: 48, extraFrom: 'p5', attentionReduction: 8 },
      head: { numClasses: 1, numConvs: 2, iouBranch: true, priorProbability: 0.01 },
      loss: { boxLoss: 'giou', boxWeight: 1, iouWeight: 1 },
      postprocess: { ...RETINANET_POSTPROCESS, scoreMode: 'sqrt(cls*iou)' },
    },
  };
  const chosen = base[preset];
  if (!chosen)
    throw new RangeError(`detectorConfig: unknown preset '${preset}' (expected baseline, thesis or tiny)`);
  const o = overrides;
  const merged: Omit<DetectorConfig, 'anchors'> = {
    inputSize: o.inputSize === undefined ? chosen.inputSize : (o.inputSize as [number, number] | null),
    backbone: { ...chosen.backbone, ...o.backbone },
    neck: { ...chosen.neck, ...o.neck } as DetectorConfig['neck'],
    head: { ...chosen.head, ...o.head },
    loss: { ...chosen.loss, ...o.loss },
    postprocess: { ...chosen.postprocess, ...o.postprocess },
  };
  return { ...merged, anchors: o.anchors ?? anchorConfigForLevels(merged.neck.levels) };
}

export interface Detector {
  /** Input `[N, H, W, 3]` (normalised RGB); outputs `cls_logits`, `box_deltas`, and `iou_logits` with the IoU branch. */
  model: tf.LayersModel;
  config: DetectorConfig;
  /** Output names in model-output order. */
  outputNames: string[];
  /** Strides of the head's levels. */
  strides: number[];
  /** Anchors for an input size, in the outputs' order (checks the size first, see `checkInputSize`). */
  anchorsFor(height: number, width: number): Anchors;
  /**
   * Frees every weight. `model.dispose()` alone leaves the weights of the
   * head's shared layers (tfjs-layers counts one reference per level the layer
   * runs on), 14 tensors for the tiny preset.
   */
  dispose(): void;
  /**
   * Throws a clear error for an input size the model cannot take: another size than a fixed
   * `inputSize`, or, for a dynamic model, a size that is not a multiple of the coarsest backbone
   * stride the FPN merges (tfjs would fail deep inside with a broadcast error).
   */
  checkInputSize(height: number, width: number): void;
}

/** Builds backbone + neck + head as one functional `tf.LayersModel`. */
export function buildDetector(config: DetectorConfig | DetectorPreset = 'thesis'): Detector {
  const cfg = typeof config === 'string' ? detectorConfig(config) : config;
  const strides = cfg.neck.levels.map((l) => 2 ** l);
  const anchorStrides = cfg.anchors.levels.map((l) => l.stride);
  if (anchorStrides.join() !== strides.join()) {
    throw new RangeError(
      `buildDetector: anchor strides [${anchorStrides}] do not match the neck's [${strides}]`,
    );
  }
  const perLocation = (cfg.anchors.levels[0]?.sizes.length ?? 0) * cfg.anchors.aspectRatios.length;
  const input = tf.input({
    shape: cfg.inputSize ? [cfg.inputSize[0], cfg.inputSize[1], 3] : [null, null, 3],
    name: 'images',
  });
  const body = resnet(input, cfg.backbone);
  const pyramid = neck(body.features, cfg.neck);
  const head = retinanetHead(pyramid.features, {
    numClasses: cfg.head.numClasses,
    numAnchors: perLocation,
    numConvs: cfg.head.numConvs,
    iouBranch: cfg.head.iouBranch,
    priorProbability: cfg.head.priorProbability,
  });
  const outputs = [head.clsLogits, head.boxDeltas, ...(head.iouLogits ? [head.iouLogits] : [])];
  const model = tf.model({ inputs: input, outputs, name: 'bmc_detector' });
  const outputNames = [OUTPUT_NAMES.cls, OUTPUT_NAMES.box, ...(head.iouLogits ? [OUTPUT_NAMES.iou] : [])];
  const multiple = 2 ** Math.min(5, Math.max(...cfg.neck.levels));
  const checkInputSize = (h: number, w: number) => {
    if (!(Number.isInteger(h) && Number.isInteger(w) && h > 0 && w > 0)) {
      throw new RangeError(`detector input size must be positive integers, got ${h}x${w}`);
    }
    if (cfg.inputSize) {
      if (h !== cfg.inputSize[0] || w !== cfg.inputSize[1]) {
        throw new RangeError(
          `this detector was built for ${cfg.inputSize[0]}x${cfg.inputSize[1]} inputs, got ${h}x${w}`,
        );
      }
    } else if (h % multiple !== 0 || w % multiple !== 0) {
      throw new RangeError(
        `detector input ${h}x${w}: a dynamic-size model needs multiples of ${multiple} ` +
          '(pad the image, or build with inputSize for an exact odd size)',
      );
    }
  };
  return {
    model,
    config: cfg,
    outputNames,
    strides,
    checkInputSize,
    anchorsFor: (h, w) => {
      checkInputSize(h, w);
      return generateAnchors(cfg.anchors, h, w);
    },
    dispose: () => {
      const variables = model.weights.map((w) => w.read());
      model.dispose();
      for (const v of variables) if (!v.isDisposed) v.dispose();
    },
  };
}
