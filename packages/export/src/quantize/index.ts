/**
 * Static INT8 quantisation of a bmc ONNX detector (post-training, QDQ format):
 * per-channel symmetric int8 conv weights, per-tensor uint8 activations with
 * scales from calibration inputs run through the float model, decoding / NMS
 * left in float. The result records what was done in `bmc.quantization`.
 */
import { BMC_METADATA_KEYS, type QuantizationInfo, readBmcMetadata } from '../metadata.js';
import { BMC_VERSION } from '../onnx/detector.js';
import { type CalibrationInput, collectRanges } from './calibrate.js';
import { decodeModel, encodeModel } from './graph.js';
import { applyQdq, foldPadsIntoConvs, planQdq, type QdqOptions, type QdqSummary } from './qdq.js';
import { type CalibrationMethod, DEFAULT_PERCENTILE, type Range, RangeCollector } from './ranges.js';

export { type CalibrationInput, calibrationModel, collectRanges } from './calibrate.js';
export {
  applyQdq,
  foldPadsIntoConvs,
  planQdq,
  type QdqOptions,
  type QdqPlan,
  type QdqSummary,
} from './qdq.js';
export {
  activationParams,
  CALIBRATION_METHODS,
  type CalibrationMethod,
  DEFAULT_PERCENTILE,
  quantizeBias,
  quantizeWeightsPerChannel,
  type Range,
  RangeCollector,
  roundHalfEven,
} from './ranges.js';

export interface QuantizeOptions extends QdqOptions {
  /** Range method (default 'minmax'). */
  method?: CalibrationMethod;
  /** For 'percentile' (default 99.99). */
  percentile?: number;
  /** What the calibration inputs were, for the metadata: image count and folder name. */
  calibration: { images: number; source: string };
  /** onnxruntime intra-op threads for the calibration runs (default: onnxruntime's). */
  threads?: number;
  onInput?: (index: number) => void;
}

export interface QuantizeResult {
  bytes: Uint8Array;
  summary: QdqSummary & { foldedPads: number; calibrationInputs: number };
  info: QuantizationInfo;
  ranges: Map<string, Range>;
}

/**
 * Quantises the float bmc ONNX model `floatOnnx` with ranges from `inputs` (network inputs
 * preprocessed exactly as inference prepares them: use @bmc/infer's pipeline). Throws when
 * `inputs` is empty or the file is already quantised.
 */
export async function quantizeOnnx(
  floatOnnx: Uint8Array,
  inputs: AsyncIterable<CalibrationInput> | Iterable<CalibrationInput>,
  options: QuantizeOptions,
): Promise<QuantizeResult> {
  const meta = readBmcMetadata(floatOnnx, 'model to quantise');
  if (meta.quantization) throw new Error('quantize: the model is already quantised');
  const model = decodeModel(floatOnnx);
  const foldedPads = foldPadsIntoConvs(model.graph);
  const plan = planQdq(model.graph, options);
  const method = options.method ?? 'minmax';
  const collector = new RangeCollector(method, options.percentile ?? DEFAULT_PERCENTILE);
  const n = await collectRanges(model, plan.calibrated, inputs, collector, {
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.onInput ? { onInput: options.onInput } : {}),
  });
  if (n === 0) throw new Error('quantize: no calibration inputs');
  const ranges = new Map(plan.calibrated.map((t) => [t, collector.range(t)]));
  const summary = applyQdq(model.graph, plan, ranges);
  const info: QuantizationInfo = {
    format: 'QDQ',
    weights: 'int8 symmetric per output channel (axis 0)',
    activations: 'uint8 asymmetric per tensor',
    calibration: {
      method,
      ...(method === 'percentile' ? { percentile: collector.percentile } : {}),
      images: options.calibration.images,
      inputs: n,
      source: options.calibration.source,
    },
    quantizedConvs: summary.quantizedConvs,
    floatConvs: summary.floatConvs,
    by: `bmc ${BMC_VERSION}`,
  };
  const props = (model.metadataProps ??= []);
  props.push({ key: BMC_METADATA_KEYS.quantization, value: JSON.stringify(info) });
  const bytes = encodeModel(model);
  // The result must still read as a bmc model with the quantisation recorded.
  readBmcMetadata(bytes, 'quantised model');
  return { bytes, summary: { ...summary, foldedPads, calibrationInputs: n }, info, ranges };
}
