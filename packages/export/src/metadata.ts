/**
 * The self-description a bmc ONNX file carries in `ModelProto.metadata_props`,
 * so that an inference app needs nothing but the file: every entry is a JSON
 * string under a `bmc.*` key. This module has no TensorFlow.js dependency (the
 * inference side imports it as `@bmc/export/metadata`).
 */
import { type AnchorConfig, InputError } from '@bmc/core';
// protobufjs' minimal build (the wire-format reader alone): no schema, no code generation at run time
// (fine under a strict Content-Security-Policy), nothing Node-only, so viewers bundle little.
import protobuf from 'protobufjs/minimal.js';

/** Field number of `ModelProto.metadata_props` in onnx.proto (`StringStringEntryProto`: key = 1, value = 2). */
const METADATA_PROPS_FIELD = 14;

/** Value of the `bmc.format` entry; its presence marks a bmc detector file. */
export const BMC_FORMAT = 'bmc-detector-onnx/1';

/** metadata_props keys (each value is JSON, except `bmc.format` and `bmc.version`, plain strings). */
export const BMC_METADATA_KEYS = {
  format: 'bmc.format',
  version: 'bmc.version',
  classNames: 'bmc.class_names',
  anchors: 'bmc.anchors',
  boxCoder: 'bmc.box_coder',
  input: 'bmc.input',
  outputs: 'bmc.outputs',
  scoreMode: 'bmc.score_mode',
  nms: 'bmc.nms',
  model: 'bmc.model',
  operatingPoint: 'bmc.operating_point',
  pixelScale: 'bmc.pixel_scale',
  quantization: 'bmc.quantization',
} as const;

/** How to turn RGB pixels (0..255) into the network's input: `((pixel * scale) - mean) / std` per channel. */
export interface InputNormalization {
  scale: number;
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
}

export interface BmcInputSpec {
  /** ONNX graph input name. */
  name: string;
  /** Always 'NCHW' float32 `[N, 3, H, W]`. */
  layout: 'NCHW';
  channelOrder: 'RGB';
  /** H and W must be multiples of this (the largest feature stride). */
  sizeMultiple: number;
  /** The size the model was trained at, `[H, W]`. */
  trainSize?: readonly [number, number];
  normalization: InputNormalization;
}

export interface BmcOutputNames {
  /** `[N, A, C]` class logits (sigmoid gives per-class scores). */
  clsLogits: string;
  /** `[N, A, 4]` box deltas (dx, dy, dw, dh) against the anchors, see `boxCoder`. */
  boxDeltas: string;
  /** `[N, A, 1]` IoU logits (sigmoid gives predicted IoU), absent for a plain RetinaNet. */
  iouLogits?: string;
  /**
   * Present when the file was exported `withPostprocess` (batch size 1): final detections
   * `boxes [D, 4]` xyxy input pixels, `scores [D]` descending, `labels [D]` int64.
   */
  detections?: { boxes: string; scores: string; labels: string };
}

/**
 * How class score and predicted IoU combine into the ranking score (as
 * `@bmc/heads-iou`'s postprocess names them): 'cls' = sigmoid(cls logit);
 * 'cls*iou' and 'sqrt(cls*iou)' multiply in sigmoid(IoU logit).
 */
export type ScoreMode = 'cls' | 'cls*iou' | 'sqrt(cls*iou)';
export const SCORE_MODES: readonly ScoreMode[] = ['cls', 'cls*iou', 'sqrt(cls*iou)'];

/** Post-processing settings, field names as `@bmc/heads-iou`'s `PostprocessOptions`. */
export interface NmsSettings {
  /** Candidates must score strictly above this (ranking score). */
  scoreThreshold: number;
  /** Best candidates kept per level before NMS. */
  topK: number;
  /** NMS IoU threshold. */
  nmsThreshold: number;
  /** Detections kept per image. */
  maxDetections: number;
  /** One NMS over all classes (true) or one per class (false, torchvision's batched NMS). */
  classAgnostic: boolean;
}

export interface BoxCoderSettings {
  /** torchvision BoxCoder weights (wx, wy, ww, wh). */
  weights: readonly [number, number, number, number];
  /** Clamp on dw/dh before exp. */
  clip: number;
}

/**
 * The counting threshold chosen at training time: the score threshold with the best F1 at
 * `iou` on a held-out split (the thesis' Table 1.2 picks its operating point the same way).
 * Counts and drawn boxes keep detections with `score >= scoreThreshold`; COCO results for AP
 * keep using `nms.scoreThreshold`, the low candidate threshold.
 */
export interface OperatingPoint {
  scoreThreshold: number;
  /** Precision, recall and F1 on `split` at this threshold. */
  precision: number;
  recall: number;
  f1: number;
  /** IoU at which a detection matched a ground truth box (0.5). */
  iou: number;
  /** The split the threshold was chosen on ('val'). */
  split: string;
  /** Training step of the weights it was measured with. */
  step: number;
}

/**
 * How training mapped source pixels to network pixels, so that inference feeds
 * the network cells at the size it learnt them:
 * - `native`: source pixels 1:1 (up to the scale jitter), the network saw
 *   `crop` x `crop` crops of the full images; inference tiles images larger
 *   than `crop` into `crop`-sized tiles and runs smaller ones whole.
 * - `letterbox`: each image's longer side was resized to `longSide` pixels;
 *   inference resizes the same way.
 */
export type PixelScale = { mode: 'native'; crop: number } | { mode: 'letterbox'; longSide: number };

/** Everything an inference app needs besides the graph. */
export interface BmcMetadata {
  /** bmc version that wrote the file. */
  version: string;
  classNames: readonly string[];
  /** Anchor layout; anchors are ordered (level, y, x, anchor) like the outputs. */
  anchors: AnchorConfig;
  boxCoder: BoxCoderSettings;
  input: BmcInputSpec;
  outputs: BmcOutputNames;
  scoreMode: ScoreMode;
  nms: NmsSettings;
  /** Free-form model description (preset, backbone, training run). */
  model?: Record<string, unknown>;
  /** The counting threshold chosen on validation; absent in files exported without one. */
  operatingPoint?: OperatingPoint;
  /** How training scaled images; absent in files exported before bmc recorded it (then: no resize). */
  pixelScale?: PixelScale;
  /** Present in statically quantised (INT8) files: the scheme and the calibration (`bmc export --int8`). */
  quantization?: QuantizationInfo;
}

/** What `bmc export --int8` did: scheme and calibration, recorded in `bmc.quantization`. */
export interface QuantizationInfo {
  /** 'QDQ': QuantizeLinear / DequantizeLinear pairs around the quantised ops. */
  format: 'QDQ';
  weights: string;
  activations: string;
  calibration: {
    method: 'minmax' | 'percentile';
    percentile?: number;
    /** Calibration images read. */
    images: number;
    /** Network inputs run (tiles of those images). */
    inputs: number;
    /** The calibration folder's name (not its full path). */
    source: string;
  };
  quantizedConvs: number;
  /** Convs left with float output (they read int8 weights through DequantizeLinear). */
  floatConvs: number;
  /** Tool and version that quantised the file. */
  by: string;
}

/** A file that is not a bmc ONNX model, or whose bmc metadata is malformed. */
export class BmcMetadataError extends InputError {
  override name = 'BmcMetadataError';
}

/** `BmcMetadata` as `metadata_props` entries. */
export function bmcMetadataProps(meta: BmcMetadata): Record<string, string> {
  const k = BMC_METADATA_KEYS;
  const props: Record<string, string> = {
    [k.format]: BMC_FORMAT,
    [k.version]: meta.version,
    [k.classNames]: JSON.stringify(meta.classNames),
    [k.anchors]: JSON.stringify(meta.anchors),
    [k.boxCoder]: JSON.stringify(meta.boxCoder),
    [k.input]: JSON.stringify(meta.input),
    [k.outputs]: JSON.stringify(meta.outputs),
    [k.scoreMode]: JSON.stringify(meta.scoreMode),
    [k.nms]: JSON.stringify(meta.nms),
  };
  if (meta.model) props[k.model] = JSON.stringify(meta.model);
  if (meta.operatingPoint) props[k.operatingPoint] = JSON.stringify(meta.operatingPoint);
  if (meta.pixelScale) props[k.pixelScale] = JSON.stringify(meta.pixelScale);
  if (meta.quantization) props[k.quantization] = JSON.stringify(meta.quantization);
  validateBmcMetadata(meta, 'metadata to write');
  return props;
}

/**
 * Reads all `metadata_props` of an ONNX file. Only field 14 of ModelProto is
 * decoded (the weights are skipped), so this is cheap on large files.
 */
export function readOnnxMetadataProps(onnx: Uint8Array, source = 'ONNX data'): Record<string, string> {
  const reader = protobuf.Reader.create(onnx);
  const props: Record<string, string> = {};
  try {
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      const field = tag >>> 3;
      if (field === 0) throw new Error('field number 0');
      if (field === METADATA_PROPS_FIELD && (tag & 7) === 2) {
        const length = reader.uint32();
        const end = reader.pos + length;
        const entry = { key: '', value: '' };
        while (reader.pos < end) {
          const t = reader.uint32();
          if (t >>> 3 === 1 && (t & 7) === 2) entry.key = reader.string();
          else if (t >>> 3 === 2 && (t & 7) === 2) entry.value = reader.string();
          else reader.skipType(t & 7);
        }
        if (reader.pos !== end) throw new Error('metadata_props entry overruns its length');
        props[entry.key] = entry.value;
      } else {
        reader.skipType(tag & 7);
      }
    }
  } catch (e) {
    throw new BmcMetadataError(`${source}: not a readable ONNX ModelProto (${(e as Error).message})`);
  }
  return props;
}

/**
 * The bmc metadata of an ONNX file. Throws `BmcMetadataError` when the file has
 * none (any other ONNX model) or when an entry is missing or malformed.
 */
export function readBmcMetadata(onnx: Uint8Array, source = 'ONNX data'): BmcMetadata {
  const props = readOnnxMetadataProps(onnx, source);
  const k = BMC_METADATA_KEYS;
  if (props[k.format] === undefined) {
    const keys = Object.keys(props);
    throw new BmcMetadataError(
      `${source}: not a bmc model, metadata_props has no '${k.format}' entry ` +
        `(${keys.length ? `keys present: ${keys.join(', ')}` : 'no metadata_props at all'}); ` +
        'export the detector with exportDetectorOnnx to get a self-describing file',
    );
  }
  if (props[k.format] !== BMC_FORMAT) {
    throw new BmcMetadataError(
      `${source}: unsupported bmc format '${props[k.format]}' (this reader knows ${BMC_FORMAT})`,
    );
  }
  const json = (key: string, required = true): unknown => {
    const raw = props[key];
    if (raw === undefined) {
      if (required) throw new BmcMetadataError(`${source}: bmc metadata entry '${key}' is missing`);
      return undefined;
    }
    try {
      return JSON.parse(raw);
    } catch (e) {
      throw new BmcMetadataError(
        `${source}: bmc metadata entry '${key}' is not valid JSON (${(e as Error).message})`,
      );
    }
  };
  const version = props[k.version];
  if (version === undefined)
    throw new BmcMetadataError(`${source}: bmc metadata entry '${k.version}' is missing`);
  const meta = {
    version,
    classNames: json(k.classNames),
    anchors: json(k.anchors),
    boxCoder: json(k.boxCoder),
    input: json(k.input),
    outputs: json(k.outputs),
    scoreMode: json(k.scoreMode),
    nms: json(k.nms),
    ...(props[k.model] !== undefined ? { model: json(k.model) } : {}),
    ...(props[k.operatingPoint] !== undefined ? { operatingPoint: json(k.operatingPoint) } : {}),
    ...(props[k.pixelScale] !== undefined ? { pixelScale: json(k.pixelScale) } : {}),
    ...(props[k.quantization] !== undefined ? { quantization: json(k.quantization) } : {}),
  } as BmcMetadata;
  validateBmcMetadata(meta, source);
  return meta;
}

function validateBmcMetadata(m: BmcMetadata, source: string): void {
  const fail = (what: string) => {
    throw new BmcMetadataError(`${source}: bmc metadata ${what}`);
  };
  const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
  if (
    !Array.isArray(m.classNames) ||
    m.classNames.length === 0 ||
    !m.classNames.every((c) => typeof c === 'string')
  ) {
    fail(`'${BMC_METADATA_KEYS.classNames}' must be a non-empty array of strings`);
  }
  const a = m.anchors as AnchorConfig | undefined;
  if (
    !a ||
    !Array.isArray(a.levels) ||
    a.levels.length === 0 ||
    !a.levels.every((l) => isNum(l.stride) && Array.isArray(l.sizes) && l.sizes.every(isNum)) ||
    !Array.isArray(a.aspectRatios) ||
    !a.aspectRatios.every(isNum)
  ) {
    fail(`'${BMC_METADATA_KEYS.anchors}' must be {levels: [{stride, sizes}], aspectRatios}`);
  }
  if (
    !m.boxCoder ||
    !Array.isArray(m.boxCoder.weights) ||
    m.boxCoder.weights.length !== 4 ||
    !isNum(m.boxCoder.clip)
  ) {
    fail(`'${BMC_METADATA_KEYS.boxCoder}' must be {weights: [4 numbers], clip}`);
  }
  const inp = m.input;
  if (
    !inp ||
    typeof inp.name !== 'string' ||
    inp.layout !== 'NCHW' ||
    !isNum(inp.sizeMultiple) ||
    !inp.normalization ||
    !isNum(inp.normalization.scale) ||
    inp.normalization.mean?.length !== 3 ||
    inp.normalization.std?.length !== 3
  ) {
    fail(
      `'${BMC_METADATA_KEYS.input}' must be {name, layout: 'NCHW', sizeMultiple, normalization: {scale, mean[3], std[3]}}`,
    );
  }
  if (!m.outputs || typeof m.outputs.clsLogits !== 'string' || typeof m.outputs.boxDeltas !== 'string') {
    fail(`'${BMC_METADATA_KEYS.outputs}' must name clsLogits and boxDeltas`);
  }
  if (!SCORE_MODES.includes(m.scoreMode)) {
    fail(
      `'${BMC_METADATA_KEYS.scoreMode}' must be one of ${SCORE_MODES.join(', ')}, got ${JSON.stringify(m.scoreMode)}`,
    );
  }
  if (m.scoreMode !== 'cls' && !m.outputs.iouLogits) {
    fail(`score mode '${m.scoreMode}' needs an IoU output ('${BMC_METADATA_KEYS.outputs}'.iouLogits)`);
  }
  const n = m.nms;
  if (
    !n ||
    !isNum(n.nmsThreshold) ||
    !isNum(n.scoreThreshold) ||
    !isNum(n.topK) ||
    !isNum(n.maxDetections) ||
    typeof n.classAgnostic !== 'boolean'
  ) {
    fail(
      `'${BMC_METADATA_KEYS.nms}' must be {scoreThreshold, topK, nmsThreshold, maxDetections, classAgnostic}`,
    );
  }
  const ps = m.pixelScale as Record<string, unknown> | undefined;
  const side = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (
    ps !== undefined &&
    !(ps?.mode === 'native' && side(ps.crop)) &&
    !(ps?.mode === 'letterbox' && side(ps.longSide))
  ) {
    fail(
      `'${BMC_METADATA_KEYS.pixelScale}' must be {mode: 'native', crop} or {mode: 'letterbox', longSide} (positive integers), got ${JSON.stringify(ps)}`,
    );
  }
  const op = m.operatingPoint;
  const unit = (v: unknown) => isNum(v) && (v as number) >= 0 && (v as number) <= 1;
  if (
    op !== undefined &&
    (!op ||
      !unit(op.scoreThreshold) ||
      !unit(op.precision) ||
      !unit(op.recall) ||
      !unit(op.f1) ||
      !unit(op.iou) ||
      typeof op.split !== 'string' ||
      !Number.isInteger(op.step))
  ) {
    fail(
      `'${BMC_METADATA_KEYS.operatingPoint}' must be {scoreThreshold, precision, recall, f1, iou (each in 0..1), split, step (integer)}`,
    );
  }
}
