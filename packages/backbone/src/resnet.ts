import * as tf from '@tensorflow/tfjs';
import { FrozenBatchNorm } from './frozen-batch-norm.js';
import { freezeLayer, torchConv2d } from './torch-conv.js';

export type ResNetDepth = 18 | 34 | 50 | 101;

/** Blocks per stage and block type, as torchvision's `resnet18` .. `resnet101`. */
export const RESNET_SPECS: Record<
  ResNetDepth,
  { blocks: [number, number, number, number]; bottleneck: boolean }
> = {
  18: { blocks: [2, 2, 2, 2], bottleneck: false },
  34: { blocks: [3, 4, 6, 3], bottleneck: false },
  50: { blocks: [3, 4, 6, 3], bottleneck: true },
  101: { blocks: [3, 4, 23, 3], bottleneck: true },
};

export interface ResNetOptions {
  depth: ResNetDepth;
  /**
   * Scales every channel count (stem 64 and stage widths 64..512) and rounds,
   * minimum 1. NOT a standard ResNet: for tiny test and demo models only;
   * pretrained weights need 1.
   */
  widthMultiplier?: number;
  /**
   * Stages whose weights are frozen, counted as mmdetection does: -1 none,
   * 0 the stem (conv1, bn1), 1 stem + layer1 (default, as torchvision's
   * detection backbones with `trainable_layers=3`), up to 4 (everything).
   */
  frozenStages?: number;
  /**
   * BatchNorm with fixed statistics (`FrozenBatchNorm` layers, as
   * torchvision's detection backbones) in every stage. Default true. With
   * false, stock `BatchNormalization` layers (momentum 0.9 = torch 0.1, eps
   * 1e-5) use batch statistics when the model runs with `training: true`.
   */
  frozenBatchNorm?: boolean;
  /** Layer-name prefix; default `backbone.body.` (torchvision's detection naming). */
  prefix?: string;
}

/** The four feature maps a detector neck consumes, strides 4, 8, 16, 32. */
export interface ResNetFeatures {
  /** `[C2, C3, C4, C5]` NHWC symbolic tensors. */
  features: [tf.SymbolicTensor, tf.SymbolicTensor, tf.SymbolicTensor, tf.SymbolicTensor];
  /** Channels of C2..C5 (256..2048 for ResNet50 at width 1). */
  channels: [number, number, number, number];
  strides: [4, 8, 16, 32];
}

/** Channel counts of C2..C5 for a depth and width multiplier. */
export function resnetChannels(depth: ResNetDepth, widthMultiplier = 1): [number, number, number, number] {
  const expansion = RESNET_SPECS[depth].bottleneck ? 4 : 1;
  return [0, 1, 2, 3].map((i) => scaled(64 * 2 ** i, widthMultiplier) * expansion) as [
    number,
    number,
    number,
    number,
  ];
}

function scaled(channels: number, m: number): number {
  return Math.max(1, Math.round(channels * m));
}

/** torchvision's ResNet init: kaiming normal, fan_out, relu gain. */
const convInit = () => tf.initializers.varianceScaling({ scale: 2, mode: 'fanOut', distribution: 'normal' });

interface BuildContext {
  frozenBn: boolean;
  /** Layers created by the current stage, frozen afterwards when the stage is. */
  stageLayers: tf.layers.Layer[];
}

function conv(ctx: BuildContext, x: tf.SymbolicTensor, name: string, filters: number, k: number, stride = 1) {
  const y = torchConv2d(x, {
    filters,
    kernelSize: k,
    strides: stride,
    useBias: false,
    name,
    kernelInitializer: convInit(),
  });
  ctx.stageLayers.push(y.sourceLayer as tf.layers.Layer);
  return y;
}

function bn(ctx: BuildContext, x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  const layer = ctx.frozenBn
    ? new FrozenBatchNorm({ name, epsilon: 1e-5 })
    : tf.layers.batchNormalization({ name, epsilon: 1e-5, momentum: 0.9, axis: -1 });
  ctx.stageLayers.push(layer);
  return layer.apply(x) as tf.SymbolicTensor;
}

function relu(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  return tf.layers.reLU({ name }).apply(x) as tf.SymbolicTensor;
}

function block(
  ctx: BuildContext,
  x: tf.SymbolicTensor,
  name: string,
  planes: number,
  stride: number,
  bottleneck: boolean,
): tf.SymbolicTensor {
  const inChannels = x.shape[x.shape.length - 1] as number;
  const outChannels = bottleneck ? planes * 4 : planes;
  let y: tf.SymbolicTensor;
  if (bottleneck) {
    // torchvision (ResNet v1.5): the stride sits on the 3x3 conv.
    y = relu(bn(ctx, conv(ctx, x, `${name}.conv1`, planes, 1), `${name}.bn1`), `${name}.relu1`);
    y = relu(bn(ctx, conv(ctx, y, `${name}.conv2`, planes, 3, stride), `${name}.bn2`), `${name}.relu2`);
    y = bn(ctx, conv(ctx, y, `${name}.conv3`, outChannels, 1), `${name}.bn3`);
  } else {
    y = relu(bn(ctx, conv(ctx, x, `${name}.conv1`, planes, 3, stride), `${name}.bn1`), `${name}.relu1`);
    y = bn(ctx, conv(ctx, y, `${name}.conv2`, planes, 3), `${name}.bn2`);
  }
  let identity = x;
  if (stride !== 1 || inChannels !== outChannels) {
    identity = bn(ctx, conv(ctx, x, `${name}.downsample.0`, outChannels, 1, stride), `${name}.downsample.1`);
  }
  const sum = tf.layers.add({ name: `${name}.add` }).apply([y, identity]) as tf.SymbolicTensor;
  return relu(sum, `${name}.relu`);
}

/**
 * Builds a torchvision-architecture ResNet on an NHWC input and returns
 * C2..C5. Layers are named after torchvision's parameters under `prefix`
 * (`backbone.body.layer1.0.conv1`, `...bn1`, `...downsample.0`), so
 * `importTorchWeights` maps state-dict keys directly. No classifier (fc).
 * Input normalisation (ImageNet mean/std) happens outside the model.
 */
export function resnet(input: tf.SymbolicTensor, options: ResNetOptions): ResNetFeatures {
  const spec = RESNET_SPECS[options.depth];
  if (!spec) throw new RangeError(`resnet: unsupported depth ${options.depth} (expected 18, 34, 50 or 101)`);
  const m = options.widthMultiplier ?? 1;
  if (!(m > 0)) throw new RangeError(`resnet: widthMultiplier must be > 0, got ${m}`);
  const frozenStages = options.frozenStages ?? 1;
  if (!Number.isInteger(frozenStages) || frozenStages < -1 || frozenStages > 4) {
    throw new RangeError(`resnet: frozenStages must be an integer in -1..4, got ${frozenStages}`);
  }
  const p = options.prefix ?? 'backbone.body.';
  const ctx: BuildContext = { frozenBn: options.frozenBatchNorm ?? true, stageLayers: [] };
  const endStage = (stage: number) => {
    if (stage <= frozenStages) ctx.stageLayers.forEach(freezeLayer);
    ctx.stageLayers = [];
  };

  let x = conv(ctx, input, `${p}conv1`, scaled(64, m), 7, 2);
  x = relu(bn(ctx, x, `${p}bn1`), `${p}relu`);
  // Zero padding equals torch's -inf padding here: inputs are post-ReLU (>= 0).
  x = tf.layers.zeroPadding2d({ padding: 1, name: `${p}maxpool.pad` }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: `${p}maxpool` })
    .apply(x) as tf.SymbolicTensor;
  endStage(0);

  const outs: tf.SymbolicTensor[] = [];
  for (let s = 0; s < 4; s++) {
    const planes = scaled(64 * 2 ** s, m);
    for (let b = 0; b < spec.blocks[s]!; b++) {
      x = block(ctx, x, `${p}layer${s + 1}.${b}`, planes, b === 0 && s > 0 ? 2 : 1, spec.bottleneck);
    }
    endStage(s + 1);
    outs.push(x);
  }
  return {
    features: outs as ResNetFeatures['features'],
    channels: resnetChannels(options.depth, m),
    strides: [4, 8, 16, 32],
  };
}
