import type * as tf from '@tensorflow/tfjs';
import { fpn } from './fpn.js';
import { pan } from './pan.js';

export type NeckKind = 'fpn' | 'pan' | 'pan-attn';

export interface NeckOptions {
  /** `fpn`: FPN only; `pan`: FPN + bottom-up path with addition; `pan-attn`: with global-attention fusion. */
  kind: NeckKind;
  /**
   * Output levels, consecutive, by log2(stride): `[2, 3, 4, 5]` (bmc's
   * N2-N5), `[3, 4, 5, 6, 7]` (classic RetinaNet P3-P7). Levels 2..5 come from
   * C2..C5, 6 and 7 from extra stride-2 convs.
   */
  levels: readonly number[];
  /** Channels of every output level. Default 256. */
  channels?: number;
  /** Input of P6 ('p5' as torchvision, 'c5' as the RetinaNet paper). Default 'p5'. */
  extraFrom?: 'p5' | 'c5';
  /** PAN-attn's attention MLP reduction (hidden = channels / r). Default 16. */
  attentionReduction?: number;
}

export interface NeckOutput {
  /** One NHWC map per level, finest first. */
  features: tf.SymbolicTensor[];
  levels: number[];
  /** 2^level for each output. */
  strides: number[];
  channels: number;
}

/**
 * The neck the detector config names: FPN over the backbone levels the
 * output levels need, optional P6/P7, then nothing (fpn) or a bottom-up
 * path (pan, pan-attn) over all output levels. `backbone` is C2..C5.
 */
export function neck(backbone: readonly tf.SymbolicTensor[], options: NeckOptions): NeckOutput {
  const levels = [...options.levels];
  if (backbone.length !== 4) throw new RangeError(`neck: expected C2..C5 (4 maps), got ${backbone.length}`);
  if (
    levels.length === 0 ||
    levels.some((l, i) => !Number.isInteger(l) || (i > 0 && l !== levels[i - 1]! + 1))
  ) {
    throw new RangeError(`neck: levels must be consecutive integers, got [${levels}]`);
  }
  if (levels[0]! < 2 || levels[levels.length - 1]! > 7) {
    throw new RangeError(`neck: levels must lie in 2..7, got [${levels}]`);
  }
  const fromBackbone = levels.filter((l) => l <= 5);
  const extra = levels.filter((l) => l > 5).length as 0 | 1 | 2;
  if (fromBackbone.length === 0) throw new RangeError('neck: at least one level from 2..5 is needed');
  if (extra > 0 && fromBackbone[fromBackbone.length - 1] !== 5) {
    throw new RangeError(`neck: levels 6/7 are built on level 5, which [${levels}] lacks`);
  }
  const channels = options.channels ?? 256;
  const inputs = fromBackbone.map((l) => backbone[l - 2]!);
  let features = fpn(inputs, {
    outChannels: channels,
    extraLevels: extra,
    extraFrom: options.extraFrom ?? 'p5',
  });
  if (options.kind === 'pan' || options.kind === 'pan-attn') {
    features = pan(features, {
      attention: options.kind === 'pan-attn',
      ...(options.attentionReduction ? { attentionReduction: options.attentionReduction } : {}),
    });
  } else if (options.kind !== 'fpn') {
    throw new RangeError(`neck: unknown kind '${String(options.kind)}' (expected fpn, pan or pan-attn)`);
  }
  return { features, levels, strides: levels.map((l) => 2 ** l), channels };
}
