import * as tf from '@tensorflow/tfjs';
import { looksLikePth, type PthFile, parsePth } from './pth.js';
import { parseSafetensors, type SafetensorsFile } from './safetensors.js';

/** PyTorch tensors by state-dict key: row-major float32 data with torch's shape (NCHW / OIHW). */
export interface TorchWeightSource {
  keys(): Iterable<string>;
  shape(key: string): readonly number[];
  read(key: string): Float32Array;
}

export class WeightImportError extends Error {
  override name = 'WeightImportError';
}

/** Adapts a parsed safetensors file. */
export function safetensorsSource(file: SafetensorsFile): TorchWeightSource {
  return {
    keys: () => file.entries.keys(),
    shape: (k) => file.entries.get(k)!.shape,
    read: (k) => file.getFloat32(k),
  };
}

/** Adapts a parsed `.pth` state dict. */
export function pthSource(file: PthFile): TorchWeightSource {
  return {
    keys: () => file.entries.keys(),
    shape: (k) => file.entries.get(k)!.shape,
    read: (k) => file.getFloat32(k),
  };
}

/** Adapts an in-memory record `{key: {shape, data}}`. */
export function recordSource(
  record: Record<string, { shape: number[]; data: Float32Array }>,
): TorchWeightSource {
  return { keys: () => Object.keys(record), shape: (k) => record[k]!.shape, read: (k) => record[k]!.data };
}

export interface ImportTorchWeightsOptions {
  /** Only layers whose names start with this are loaded. Default '' (all layers with weights). */
  layerPrefix?: string;
  /** Replaces `layerPrefix` to form source keys: key = sourcePrefix + rest of layer name + '.' + param. Default ''. */
  sourcePrefix?: string;
  /** Throw when keys are missing or unexpected (both listed by name). Default true. */
  strict?: boolean;
  /**
   * Source keys (strings are prefixes after `sourcePrefix`, or RegExps on the full key) that are
   * neither loaded nor reported as unexpected. Default: `num_batches_tracked` buffers.
   */
  ignore?: ReadonlyArray<string | RegExp>;
}

export interface ImportReport {
  /** Source keys copied into the model. */
  loaded: string[];
  /** Keys the model needs that the source lacks. */
  missing: string[];
  /** Source keys under `sourcePrefix` that no layer took and `ignore` did not match. */
  unexpected: string[];
  ignored: string[];
}

/** Torch parameter name for each tfjs weight name, by layer class. */
const PARAM_NAMES: Record<string, Record<string, string>> = {
  Conv2D: { kernel: 'weight', bias: 'bias' },
  Dense: { kernel: 'weight', bias: 'bias' },
  BatchNormalization: {
    gamma: 'weight',
    beta: 'bias',
    moving_mean: 'running_mean',
    moving_variance: 'running_var',
  },
  FrozenBatchNorm: {
    gamma: 'weight',
    beta: 'bias',
    moving_mean: 'running_mean',
    moving_variance: 'running_var',
  },
};

export const DEFAULT_IGNORE: ReadonlyArray<string | RegExp> = [/(^|\.)num_batches_tracked$/];

interface Assignment {
  variable: tf.LayerVariable;
  key: string;
  data: Float32Array;
  shape: number[];
}

/** The torch key each weight of a model maps to (for exporting a state dict, or listing what import expects). */
export function torchKeysOf(
  model: tf.LayersModel,
  options: Pick<ImportTorchWeightsOptions, 'layerPrefix' | 'sourcePrefix'> = {},
): Array<{ key: string; variable: tf.LayerVariable; layerClass: string }> {
  const layerPrefix = options.layerPrefix ?? '';
  const sourcePrefix = options.sourcePrefix ?? '';
  const out: Array<{ key: string; variable: tf.LayerVariable; layerClass: string }> = [];
  for (const layer of model.layers) {
    if (layer.weights.length === 0 || !layer.name.startsWith(layerPrefix)) continue;
    const cls = layer.getClassName();
    const names = PARAM_NAMES[cls];
    if (!names) {
      throw new WeightImportError(`layer '${layer.name}' (${cls}) has weights but no torch mapping`);
    }
    for (const w of layer.weights) {
      const suffix = w.originalName.slice(w.originalName.lastIndexOf('/') + 1);
      const param = names[suffix];
      if (!param) throw new WeightImportError(`layer '${layer.name}' (${cls}): unknown weight '${suffix}'`);
      out.push({
        key: `${sourcePrefix}${layer.name.slice(layerPrefix.length)}.${param}`,
        variable: w,
        layerClass: cls,
      });
    }
  }
  return out;
}

/**
 * Copies PyTorch weights into a model whose layers carry torch names
 * (`backbone.body.layer1.0.conv1` <- `layer1.0.conv1.weight` with
 * `layerPrefix: 'backbone.body.'`). Conv kernels go OIHW -> HWIO, dense
 * kernels are transposed, BatchNorm running stats fill the moving averages.
 * Everything is validated (shapes, missing, unexpected) before any weight is
 * written, so a failed import leaves the model unchanged.
 */
export function importTorchWeights(
  model: tf.LayersModel,
  source: TorchWeightSource,
  options: ImportTorchWeightsOptions = {},
): ImportReport {
  const sourcePrefix = options.sourcePrefix ?? '';
  const ignore = options.ignore ?? DEFAULT_IGNORE;
  const isIgnored = (key: string) =>
    ignore.some((p) =>
      typeof p === 'string'
        ? key.startsWith(sourcePrefix) && key.slice(sourcePrefix.length).startsWith(p)
        : p.test(key),
    );
  const available = new Set(source.keys());
  const report: ImportReport = { loaded: [], missing: [], unexpected: [], ignored: [] };
  const plan: Assignment[] = [];
  const shapeErrors: string[] = [];
  for (const { key, variable, layerClass } of torchKeysOf(model, options)) {
    if (!available.has(key)) {
      report.missing.push(key);
      continue;
    }
    available.delete(key);
    const torchShape = [...source.shape(key)];
    const target = variable.shape as number[];
    const converted = convert(layerClass, torchShape, target);
    if (!converted) {
      shapeErrors.push(
        `${key}: torch shape [${torchShape}] does not fit ${variable.originalName} [${target}]`,
      );
      continue;
    }
    plan.push({ variable, key, data: converted(source.read(key)), shape: target });
  }
  for (const key of available) {
    if (!key.startsWith(sourcePrefix)) continue;
    if (isIgnored(key)) report.ignored.push(key);
    else report.unexpected.push(key);
  }
  if (shapeErrors.length > 0) {
    const others =
      (options.strict ?? true)
        ? `, ${report.missing.length} missing, ${report.unexpected.length} unexpected`
        : '';
    throw new WeightImportError(
      `shape mismatch for ${shapeErrors.length} weight(s)${others}:\n  ${shapeErrors.join('\n  ')}` +
        ((options.strict ?? true)
          ? listing('missing', report.missing) + listing('unexpected', report.unexpected)
          : ''),
    );
  }
  if ((options.strict ?? true) && (report.missing.length > 0 || report.unexpected.length > 0)) {
    throw new WeightImportError(
      `strict weight import failed: ${report.missing.length} missing, ${report.unexpected.length} unexpected` +
        listing('missing', report.missing) +
        listing('unexpected', report.unexpected),
    );
  }
  for (const a of plan) {
    const t = tf.tensor(a.data, a.shape, 'float32');
    a.variable.write(t);
    t.dispose();
    report.loaded.push(a.key);
  }
  return report;
}

/** One line per key (the first 40), so a caller can show the first few lines. */
function listing(what: string, keys: string[]): string {
  const lines = keys.slice(0, 40).map((k) => `\n  ${what}: ${k}`);
  if (keys.length > 40) lines.push(`\n  ${what}: ... (${keys.length - 40} more)`);
  return lines.join('');
}

type Converter = (data: Float32Array) => Float32Array;

/** A converter from torch layout to the tfjs variable's layout, or null when the shapes do not correspond. */
function convert(layerClass: string, torch: number[], target: number[]): Converter | null {
  if (torch.length === 4 && target.length === 4) {
    const [o, i, kh, kw] = torch as [number, number, number, number];
    if (target[0] !== kh || target[1] !== kw || target[2] !== i || target[3] !== o) return null;
    return (src) => {
      const dst = new Float32Array(src.length);
      // OIHW -> HWIO
      for (let a = 0; a < o; a++)
        for (let b = 0; b < i; b++)
          for (let y = 0; y < kh; y++)
            for (let x = 0; x < kw; x++)
              dst[((y * kw + x) * i + b) * o + a] = src[((a * i + b) * kh + y) * kw + x]!;
      return dst;
    };
  }
  if (layerClass === 'Dense' && torch.length === 2 && target.length === 2) {
    const [o, i] = torch as [number, number];
    if (target[0] !== i || target[1] !== o) return null;
    return (src) => {
      const dst = new Float32Array(src.length);
      for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) dst[b * o + a] = src[a * i + b]!;
      return dst;
    };
  }
  if (torch.length === 1 && target.length === 1 && torch[0] === target[0]) return (src) => src;
  return null;
}

/** Where ResNet weights sit inside common checkpoint layouts, tried in order. */
const RESNET_KEY_PREFIXES = ['', 'backbone.body.', 'backbone.', 'model.', 'module.', 'resnet.'];

export interface ImportResNetOptions extends Omit<ImportTorchWeightsOptions, 'sourcePrefix'> {
  /** Prefix of the ResNet keys in the file; default: detected from where `conv1.weight` is. */
  sourcePrefix?: string;
  /** Name of the file for error messages. */
  source?: string;
}

/**
 * Loads torchvision / timm ResNet weights (`conv1.weight`, `bn1.*`,
 * `layerN.B.convK.*`, `layerN.0.downsample.{0,1}.*`) from safetensors bytes
 * into the backbone layers of `model` (prefix `backbone.body.` by default).
 * The ImageNet classifier (`fc.*`) and `num_batches_tracked` are ignored;
 * anything else unknown, or any missing weight, fails with the keys listed.
 */
export function importResNetSafetensors(
  model: tf.LayersModel,
  bytes: Uint8Array,
  options: ImportResNetOptions = {},
): ImportReport {
  const name = options.source ?? 'safetensors';
  return importResNet(model, safetensorsSource(parseSafetensors(bytes, name)), name, options);
}

/**
 * Like {@link importResNetSafetensors} for either file format: a PyTorch `.pth` (zip archive or
 * legacy stream, read by {@link parsePth} without executing anything from it) or safetensors,
 * told apart by the first bytes.
 */
export function importResNetWeights(
  model: tf.LayersModel,
  bytes: Uint8Array,
  options: ImportResNetOptions = {},
): ImportReport & { format: 'safetensors' | 'pth' } {
  const name = options.source ?? 'weights';
  if (looksLikePth(bytes)) {
    return { ...importResNet(model, pthSource(parsePth(bytes, name)), name, options), format: 'pth' };
  }
  const source = safetensorsSource(parseSafetensors(bytes, name));
  return { ...importResNet(model, source, name, options), format: 'safetensors' };
}

function importResNet(
  model: tf.LayersModel,
  source: TorchWeightSource,
  name: string,
  options: ImportResNetOptions,
): ImportReport {
  let sourcePrefix = options.sourcePrefix;
  if (sourcePrefix === undefined) {
    const keys = new Set(source.keys());
    sourcePrefix = RESNET_KEY_PREFIXES.find((p) => keys.has(`${p}conv1.weight`));
    if (sourcePrefix === undefined) {
      throw new WeightImportError(
        `${name}: no ResNet 'conv1.weight' found under any of the prefixes ` +
          `${RESNET_KEY_PREFIXES.map((p) => `'${p}'`).join(', ')}; pass sourcePrefix`,
      );
    }
  }
  try {
    return importTorchWeights(model, source, {
      layerPrefix: options.layerPrefix ?? 'backbone.body.',
      sourcePrefix,
      strict: options.strict ?? true,
      ignore: options.ignore ?? [...DEFAULT_IGNORE, 'fc.'],
    });
  } catch (e) {
    // Name the file: the trainer prints this message as it is.
    if (e instanceof WeightImportError && !e.message.startsWith(name)) {
      throw new WeightImportError(`${name}: ${e.message}`);
    }
    throw e;
  }
}
