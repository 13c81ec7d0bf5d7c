import pkg from '../../package.json';
import { type BmcMetadata, bmcMetadataProps } from '../metadata.js';
import {
  exportOnnx,
  type FunctionalModelLike,
  type OnnxExportOptions,
  type OnnxExportResult,
} from './export.js';

/** The bmc version written into `bmc.version` (this package's version). */
export const BMC_VERSION: string = pkg.version;

export const DETECTOR_OUTPUTS = ['cls_logits', 'box_deltas', 'iou_logits'] as const;

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
  options: Omit<OnnxExportOptions, 'metadata' | 'outputNames'> = {},
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
      clsLogits: 'cls_logits',
      boxDeltas: 'box_deltas',
      ...(outputNames.includes('iou_logits') ? { iouLogits: 'iou_logits' } : {}),
    },
  };
  const outputDimParams = Object.fromEntries(outputNames.map((n) => [n, { 0: 'N', 1: 'A' }]));
  return exportOnnx(model, {
    ...options,
    inputNames: [inputName],
    outputNames,
    outputDimParams,
    metadata: bmcMetadataProps(full),
    producerVersion: full.version,
  });
}
