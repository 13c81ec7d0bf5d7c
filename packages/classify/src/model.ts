import { type ResNetDepth, resnet } from '@bmc/backbone';
import * as tf from '@tensorflow/tfjs';
import { type VitOptions, vitEncoder } from './vit.js';

/** Classifier architectures: a ResNet (the default) or a small vision transformer (`vit.ts`). */
export type ClassifierArch = 'resnet' | 'vit';
export const CLASSIFIER_ARCHS: readonly ClassifierArch[] = ['resnet', 'vit'];

export interface ClassifierOptions {
  numClasses: number;
  cropSize: number;
  /** Default `resnet`. */
  arch?: ClassifierArch;
  /** ResNet depth (`arch: 'resnet'`). */
  depth?: ResNetDepth;
  /** ResNet width multiplier (1 = torchvision's widths; smaller for quick CPU runs). */
  widthMultiplier?: number;
  /**
   * Draw the initial weights from this seed (the same initializers, seeded), so a run is
   * reproducible and a resumed run can be compared with an uninterrupted one. Default: unseeded.
   */
  seed?: number;
  /** ViT sizes (`arch: 'vit'`; defaults in `VIT_DEFAULTS`). */
  vit?: VitOptions;
}

/** Layer name of the logits (the ONNX output is named after the model output, `logits`). */
export const CLASSIFIER_OUTPUT = 'logits';

/**
 * A crop classifier. `arch: 'resnet'` (default): a `@bmc/backbone` ResNet (no frozen stages, BatchNorm with batch statistics
 * in training, since it trains from scratch on crops), global average pooling of C5 and one linear
 * layer to `numClasses` logits, as torchvision's `resnet18(num_classes=...)`. Input: NHWC
 * `[N, cropSize, cropSize, 3]`, ImageNet-normalised outside the model (see `normalizeCrops`).
 * `arch: 'vit'`: the small vision transformer of `vit.ts` (mean of its tokens), then the same
 * linear layer. Either way a tfjs functional model with input `crops` and output `logits`.
 */
export function buildClassifier(o: ClassifierOptions): tf.LayersModel {
  if (!Number.isInteger(o.numClasses) || o.numClasses < 2)
    throw new RangeError(`buildClassifier: numClasses must be an integer >= 2, got ${o.numClasses}`);
  if (!Number.isInteger(o.cropSize) || o.cropSize < 32)
    throw new RangeError(`buildClassifier: cropSize must be an integer >= 32, got ${o.cropSize}`);
  const arch = o.arch ?? 'resnet';
  if (!CLASSIFIER_ARCHS.includes(arch))
    throw new RangeError(`buildClassifier: arch must be ${CLASSIFIER_ARCHS.join(' or ')}, got ${arch}`);
  const input = tf.input({ shape: [o.cropSize, o.cropSize, 3], name: 'crops' });
  let pooled: tf.SymbolicTensor;
  if (arch === 'vit') {
    pooled = vitEncoder(input, o.vit);
  } else {
    const body = resnet(input, {
      depth: o.depth ?? 18,
      widthMultiplier: o.widthMultiplier ?? 1,
      frozenStages: -1,
      frozenBatchNorm: false,
      prefix: '',
    });
    pooled = tf.layers
      .globalAveragePooling2d({ name: 'avgpool' })
      .apply(body.features[3]) as tf.SymbolicTensor;
  }
  const logits = tf.layers
    .dense({ units: o.numClasses, name: CLASSIFIER_OUTPUT })
    .apply(pooled) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: logits, name: 'classifier' });
  if (o.seed !== undefined) seedKernels(model, o.seed);
  return model;
}

interface KernelLayer {
  kernel?: { write(t: tf.Tensor): void; shape: number[] };
  kernelInitializer?: { getClassName(): string; getConfig(): object };
}

/**
 * Redraws every kernel with its layer's own initializer, seeded (layer i gets seed + i): the ResNet's
 * He-normal fan-out convolutions (variance scaling), the ViT's and the linear layers' Glorot-uniform.
 * Biases, BatchNorm and LayerNorm start as constants, so they need no seed.
 */
function seedKernels(model: tf.LayersModel, seed: number): void {
  model.layers.forEach((layer, i) => {
    const { kernel, kernelInitializer: init } = layer as unknown as KernelLayer;
    if (!kernel || !init) return;
    const s = (seed * 7919 + i) >>> 0;
    const cls = init.getClassName();
    const seeded =
      cls === 'VarianceScaling'
        ? tf.initializers.varianceScaling({
            ...(init.getConfig() as Parameters<typeof tf.initializers.varianceScaling>[0]),
            seed: s,
          })
        : cls === 'GlorotUniform'
          ? tf.initializers.glorotUniform({ seed: s })
          : undefined;
    if (!seeded) throw new Error(`buildClassifier: no seeded version of the ${cls} initializer`);
    const w = seeded.apply(kernel.shape);
    kernel.write(w);
    w.dispose();
  });
}

/** Row-wise softmax of `[N, K]` logits in plain JS (for ONNX outputs and reports). */
export function softmaxRows(logits: Float32Array, k: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < logits.length / k; r++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, logits[r * k + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += out[r * k + j] = Math.exp(logits[r * k + j]! - m);
    for (let j = 0; j < k; j++) out[r * k + j]! /= s;
  }
  return out;
}
