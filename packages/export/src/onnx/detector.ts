import { DEFAULT_XFORM_CLIP, DETECTOR_OUTPUTS, OUTPUT_NAMES } from '@bmc/core';
import pkg from '../../package.json';
import { type BmcMetadata, bmcMetadataProps } from '../metadata.js';
import {
  exportOnnx,
  type FunctionalModelLike,
  type OnnxExportOptions,
  type OnnxExportResult,
} from './export.js';
import { appendPostprocess, POSTPROCESS_OUTPUTS } from './postprocess-graph.js';

/** The bmc version written into `bmc.version` (this package's version). */
export const BMC_VERSION: string = pkg.version;

/** The detector's raw output names in model-output order: @bmc/core's, the ones the head builds. */
export { DETECTOR_OUTPUTS };

export type DetectorMetadataInput = Omit<BmcMetadata, 'version' | 'outputs' | 'input'> & {
  input: Omit<BmcMetadata['input'], 'name' | 'layout' | 'channelOrder'>;
  version?: string;
};

/**
 * Assigns the detector's ONNX output names to the tfjs outputs: by name when each tfjs
 * output name contains exactly one of 'cls', 'box', 'iou', otherwise by position
 * (cls, box, iou), the order the heads package returns them in.
 */
function detectorOutputNames(tfNames: readonly string[]): string[] {
  const keys = ['cls', 'box', 'iou'];
  const byName = tfNames.map((n) => {
    const hits = keys.filter((k) => n.toLowerCase().includes(k));
    return hits.length === 1 ? DETECTOR_OUTPUTS[keys.indexOf(hits[0]!)]! : undefined;
  });
  if (byName.every((n) => n !== undefined) && new Set(byName).size === byName.length)
    return byName as string[];
  return DETECTOR_OUTPUTS.slice(0, tfNames.length);
}

/**
 * Exports a detector network (image in, `cls_logits [N,A,C]`, `box_deltas [N,A,4]`,
 * `iou_logits [N,A,1]` out) as a self-describing ONNX file: input `images`
 * NCHW `[N, 3, H, W]`, outputs with the symbolic anchor count `A`, and the
 * bmc metadata (classes, anchors, box coder, normalisation, score mode, NMS).
 */
export function exportDetectorOnnx(
  model: FunctionalModelLike,
  meta: DetectorMetadataInput,
  options: Omit<OnnxExportOptions, 'metadata' | 'outputNames' | 'extend' | 'batchSize'> & {
    /**
     * Also put decoding and NMS into the graph (batch size 1): extra outputs `det_boxes [D, 4]`
     * xyxy in input pixels, `det_scores [D]` descending, `det_labels [D]` int64, computed with
     * the metadata's anchors, box coder, score mode and NMS settings.
     */
    withPostprocess?: boolean;
  } = {},
): OnnxExportResult {
  if (model.inputs.length !== 1)
    throw new Error(`exportDetectorOnnx: expected one image input, got ${model.inputs.length}`);
  if (model.outputs.length < 2 || model.outputs.length > 3) {
    throw new Error(
      `exportDetectorOnnx: expected 2 or 3 outputs (cls, box[, iou]), got ${model.outputs.length}`,
    );
  }
  const outputNames = detectorOutputNames(model.outputNames);
  const inputName = options.inputNames?.[0] ?? 'images';
  const full: BmcMetadata = {
    ...meta,
    version: meta.version ?? BMC_VERSION,
    input: { name: inputName, layout: 'NCHW', channelOrder: 'RGB', ...meta.input },
    outputs: {
      clsLogits: OUTPUT_NAMES.cls,
      boxDeltas: OUTPUT_NAMES.box,
      ...(outputNames.includes(OUTPUT_NAMES.iou) ? { iouLogits: OUTPUT_NAMES.iou } : {}),
      ...(options.withPostprocess ? { detections: { ...POSTPROCESS_OUTPUTS } } : {}),
    },
  };
  const outputDimParams = Object.fromEntries(outputNames.map((n) => [n, { 1: 'A' }]));
  const { withPostprocess, ...rest } = options;
  return exportOnnx(model, {
    ...rest,
    ...(withPostprocess
      ? {
          batchSize: 1,
          extend: (g, io) =>
            appendPostprocess(
              g,
              {
                image: io.inputs[0]!,
                clsLogits: OUTPUT_NAMES.cls,
                boxDeltas: OUTPUT_NAMES.box,
                ...(outputNames.includes(OUTPUT_NAMES.iou) ? { iouLogits: OUTPUT_NAMES.iou } : {}),
                numClasses: full.classNames.length,
              },
              full,
            ),
        }
      : {}),
    inputNames: [inputName],
    outputNames,
    outputDimParams,
    metadata: bmcMetadataProps(full),
    producerVersion: full.version,
  });
}

/** The parts of `@bmc/heads-iou`'s `DetectorConfig` the metadata needs (structural: no import). */
export interface DetectorConfigLike {
  inputSize: readonly [number, number] | null;
  anchors: BmcMetadata['anchors'];
  neck: { levels: readonly number[] };
  head: { numClasses: number; iouBranch: boolean };
  postprocess: {
    scoreMode?: BmcMetadata['scoreMode'];
    scoreThreshold?: number;
    topK?: number;
    nmsThreshold?: number;
    maxDetections?: number;
    boxCoderWeights?: readonly [number, number, number, number];
  };
}

/** torchvision's ImageNet normalisation (GeneralizedRCNNTransform's defaults) on 0..255 RGB. */
export const IMAGENET_NORMALIZATION = {
  scale: 1 / 255,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
} as const;

/**
 * Metadata for `exportDetectorOnnx` from a detector config: anchors, box coder,
 * score mode and NMS settings (postprocess defaults as heads-iou's), input size
 * multiple (the largest stride). Class names default to `class_0..`.
 */
export function detectorMetadata(
  config: DetectorConfigLike,
  extra: {
    classNames?: readonly string[];
    normalization?: BmcMetadata['input']['normalization'];
    model?: Record<string, unknown>;
    /** The counting threshold chosen on validation (see `OperatingPoint`). */
    operatingPoint?: BmcMetadata['operatingPoint'];
    /** How training scaled images (see `PixelScale`); inference reproduces it. */
    pixelScale?: BmcMetadata['pixelScale'];
  } = {},
): DetectorMetadataInput {
  const k = config.head.numClasses;
  const classNames = extra.classNames ?? Array.from({ length: k }, (_, i) => `class_${i}`);
  if (classNames.length !== k) {
    throw new RangeError(`detectorMetadata: ${classNames.length} class names for a ${k}-class head`);
  }
  const pp = config.postprocess;
  return {
    classNames,
    anchors: config.anchors,
    boxCoder: { weights: pp.boxCoderWeights ?? [1, 1, 1, 1], clip: DEFAULT_XFORM_CLIP },
    input: {
      sizeMultiple: 2 ** Math.max(...config.neck.levels),
      ...(config.inputSize ? { trainSize: config.inputSize } : {}),
      normalization: extra.normalization ?? IMAGENET_NORMALIZATION,
    },
    scoreMode: pp.scoreMode ?? (config.head.iouBranch ? 'sqrt(cls*iou)' : 'cls'),
    nms: {
      scoreThreshold: pp.scoreThreshold ?? 0.05,
      topK: pp.topK ?? 1000,
      nmsThreshold: pp.nmsThreshold ?? 0.5,
      maxDetections: pp.maxDetections ?? 100,
      classAgnostic: false,
    },
    ...(extra.model ? { model: extra.model } : {}),
    ...(extra.operatingPoint ? { operatingPoint: extra.operatingPoint } : {}),
    ...(extra.pixelScale ? { pixelScale: extra.pixelScale } : {}),
  };
}
