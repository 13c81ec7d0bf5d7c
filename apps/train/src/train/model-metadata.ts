import { OUTPUT_NAMES } from '@bmc/core';
import {
  BMC_VERSION,
  type BmcMetadata,
  type DetectorConfigLike,
  type DetectorMetadataInput,
  detectorMetadata,
  type PixelScale,
} from '@bmc/export';
import type { TrainConfig } from '../config/schema.js';

/**
 * The model description a run's exported ONNX file carries (classes, anchors,
 * box coder, normalisation, score mode, NMS, pixel scale). The trainer's
 * evaluation runs @bmc/infer's pipeline with the same description, so
 * `bmc eval` and `bmc detect` on the exported file process images alike.
 */
export function runMetadata(
  config: Pick<TrainConfig, 'name' | 'model' | 'data'> & Partial<Pick<TrainConfig, 'preset'>>,
  detectorConfig: DetectorConfigLike,
  classes: readonly string[],
  pixelScale: PixelScale,
  extra: Omit<
    NonNullable<Parameters<typeof detectorMetadata>[1]>,
    'classNames' | 'pixelScale' | 'model'
  > = {},
): DetectorMetadataInput {
  return detectorMetadata(
    { ...detectorConfig, inputSize: [config.data.imageSize, config.data.imageSize] },
    {
      ...extra,
      classNames: classes,
      pixelScale,
      model: {
        preset: config.preset ?? null,
        name: config.name,
        depth: config.model.backbone.depth,
        neck: config.model.neck.type,
      },
    },
  );
}

/** `runMetadata` completed as `exportDetectorOnnx` completes it (graph names), for the in-process pipeline. */
export function inProcessMetadata(m: DetectorMetadataInput): BmcMetadata {
  return {
    ...m,
    version: BMC_VERSION,
    input: { name: 'images', layout: 'NCHW', channelOrder: 'RGB', ...m.input },
    outputs: { clsLogits: OUTPUT_NAMES.cls, boxDeltas: OUTPUT_NAMES.box, iouLogits: OUTPUT_NAMES.iou },
  };
}
