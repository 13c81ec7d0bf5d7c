import { torchConv2d } from '@bmc/backbone';
import * as tf from '@tensorflow/tfjs';
import { fpnConvInit } from './common.js';

export interface PanOptions {
  /** Global-attention fusion (PAN-attn) instead of plain addition (PAN). */
  attention: boolean;
  /** Hidden width of the attention MLP is channels / reduction (min 1), SE-style. Default 16. */
  attentionReduction?: number;
  /** Layer-name prefix; default `backbone.pan.`. */
  prefix?: string;
}

/**
 * Bottom-up path aggregation over pyramid levels `P` (finest first), as
 * DESIGN.md: N_0 = P_0; for each next level
 *   I' = conv3x3 stride 2 (N_i)                         (`downsample.i`)
 *   w  = sigmoid(fc2 relu(fc1 GAP(P_{i+1})))            (`fc1.i`, `fc2.i`; attention only)
 *   N_{i+1} = conv3x3(I' * w + P_{i+1})                 (`fuse.i`; plain PAN: I' + P_{i+1})
 * The channel weights w come from the coarser level's global context and
 * gate the upward-flowing detail before it joins that level. No activation
 * between the convs, as the published formula. Output channels equal the input's.
 */
export function pan(levels: readonly tf.SymbolicTensor[], options: PanOptions): tf.SymbolicTensor[] {
  const p = options.prefix ?? 'backbone.pan.';
  const ch = levels[0]?.shape[3];
  if (ch == null) throw new RangeError('pan: needs at least one level with known channels');
  const hidden = Math.max(1, Math.floor(ch / (options.attentionReduction ?? 16)));
  const conv = (x: tf.SymbolicTensor, name: string, stride: number) =>
    torchConv2d(x, { filters: ch, kernelSize: 3, strides: stride, name, kernelInitializer: fpnConvInit() });
  // torch.nn.Linear's default weight init (kaiming_uniform a=sqrt(5)): variance 1 / (3 fan_in).
  const dense = (x: tf.SymbolicTensor, units: number, name: string) =>
    tf.layers
      .dense({
        units,
        name,
        kernelInitializer: tf.initializers.varianceScaling({
          scale: 1 / 3,
          mode: 'fanIn',
          distribution: 'uniform',
        }),
      })
      .apply(x) as tf.SymbolicTensor;
  const outs: tf.SymbolicTensor[] = [levels[0]!];
  for (let i = 0; i + 1 < levels.length; i++) {
    const next = levels[i + 1]!;
    let down = conv(outs[i]!, `${p}downsample.${i}`, 2);
    if (options.attention) {
      let w = tf.layers
        .globalAveragePooling2d({ name: `${p}attn.${i}.gap` })
        .apply(next) as tf.SymbolicTensor;
      w = dense(w, hidden, `${p}fc1.${i}`);
      w = tf.layers.reLU({ name: `${p}fc1.${i}.relu` }).apply(w) as tf.SymbolicTensor;
      w = dense(w, ch, `${p}fc2.${i}`);
      w = tf.layers
        .activation({ activation: 'sigmoid', name: `${p}fc2.${i}.sigmoid` })
        .apply(w) as tf.SymbolicTensor;
      // [N, C] -> [N, 1, 1, C]: the Multiply layer broadcasts it over H and W.
      w = tf.layers
        .reshape({ targetShape: [1, 1, ch], name: `${p}attn.${i}.reshape` })
        .apply(w) as tf.SymbolicTensor;
      down = tf.layers.multiply({ name: `${p}attn.${i}.mul` }).apply([down, w]) as tf.SymbolicTensor;
    }
    const sum = tf.layers.add({ name: `${p}fuse.${i}.add` }).apply([down, next]) as tf.SymbolicTensor;
    outs.push(conv(sum, `${p}fuse.${i}`, 1));
  }
  return outs;
}
