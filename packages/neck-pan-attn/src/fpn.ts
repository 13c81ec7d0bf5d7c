import { torchConv2d } from '@bmc/backbone';
import * as tf from '@tensorflow/tfjs';
import { fpnConvInit, upsampleLike } from './common.js';

export interface FpnOptions {
  outChannels?: number;
  /**
   * Extra levels above the inputs: 0 (none), 1 (P6) or 2 (P6, P7), made as
   * torchvision's `LastLevelP6P7`: P6 = conv3x3 s2, P7 = conv3x3 s2 (relu(P6)).
   */
  extraLevels?: 0 | 1 | 2;
  /**
   * Input of P6: 'p5' (torchvision's RetinaNet, `LastLevelP6P7(256, 256)`) or
   * 'c5' (the RetinaNet paper and mmdetection's `add_extra_convs='on_input'`).
   */
  extraFrom?: 'p5' | 'c5';
  /** Layer-name prefix; default `backbone.fpn.` (torchvision's names below it). */
  prefix?: string;
}

/**
 * Feature pyramid (torchvision `FeaturePyramidNetwork`): 1x1 lateral convs
 * (`inner_blocks.i.0`), nearest top-down upsampling and addition, 3x3 output
 * convs (`layer_blocks.i.0`), all with bias and no normalisation. `inputs`
 * are consecutive backbone levels, finest first; returns the pyramid finest
 * first, followed by the extra levels.
 */
export function fpn(inputs: readonly tf.SymbolicTensor[], options: FpnOptions = {}): tf.SymbolicTensor[] {
  if (inputs.length === 0) throw new RangeError('fpn: needs at least one input level');
  const ch = options.outChannels ?? 256;
  const p = options.prefix ?? 'backbone.fpn.';
  const conv = (x: tf.SymbolicTensor, name: string, k: number, stride = 1) =>
    torchConv2d(x, {
      filters: ch,
      kernelSize: k,
      strides: stride,
      name,
      kernelInitializer: fpnConvInit(),
      biasInitializer: 'zeros',
    });
  const last = inputs.length - 1;
  let inner = conv(inputs[last]!, `${p}inner_blocks.${last}.0`, 1);
  const results: tf.SymbolicTensor[] = [conv(inner, `${p}layer_blocks.${last}.0`, 3)];
  for (let i = last - 1; i >= 0; i--) {
    const lateral = conv(inputs[i]!, `${p}inner_blocks.${i}.0`, 1);
    const topDown = upsampleLike(inner, lateral, `${p}top_down.${i}.upsample`);
    inner = tf.layers.add({ name: `${p}top_down.${i}.add` }).apply([lateral, topDown]) as tf.SymbolicTensor;
    results.unshift(conv(inner, `${p}layer_blocks.${i}.0`, 3));
  }
  const extra = options.extraLevels ?? 0;
  if (extra >= 1) {
    const source = (options.extraFrom ?? 'p5') === 'p5' ? results[last]! : inputs[last]!;
    const p6 = conv(source, `${p}extra_blocks.p6`, 3, 2);
    results.push(p6);
    if (extra === 2) {
      const r = tf.layers.reLU({ name: `${p}extra_blocks.p7.relu` }).apply(p6) as tf.SymbolicTensor;
      results.push(conv(r, `${p}extra_blocks.p7`, 3, 2));
    }
  }
  return results;
}
