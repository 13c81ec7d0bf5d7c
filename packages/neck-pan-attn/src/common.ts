import * as tf from '@tensorflow/tfjs';

/** torchvision's FPN init: kaiming_uniform_(a=1), i.e. uniform with variance 1 / fan_in; biases zero. */
export const fpnConvInit = () =>
  tf.initializers.varianceScaling({ scale: 1, mode: 'fanIn', distribution: 'uniform' });

export function spatial(x: tf.SymbolicTensor): [number | null, number | null] {
  return [x.shape[1] ?? null, x.shape[2] ?? null];
}

/**
 * Nearest 2x upsampling of `x` to the size of `like`, as torch's
 * `F.interpolate(x, size=like.shape[-2:], mode='nearest')`. For a target of
 * 2n or 2n-1 pixels (every stride-2 pyramid), torch's source index
 * floor(i * n / out) equals floor(i / 2), so nearest 2x followed by cropping
 * the last row/column is exact. Sizes unknown at build time are assumed to
 * be exact multiples (input a multiple of the largest stride).
 */
export function upsampleLike(x: tf.SymbolicTensor, like: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
  let y = tf.layers
    .upSampling2d({ size: [2, 2], interpolation: 'nearest', name })
    .apply(x) as tf.SymbolicTensor;
  const [h, w] = spatial(x);
  const [th, tw] = spatial(like);
  if (h != null && w != null && th != null && tw != null) {
    const dh = 2 * h - th;
    const dw = 2 * w - tw;
    if (dh < 0 || dh > 1 || dw < 0 || dw > 1) {
      throw new RangeError(
        `${name}: cannot upsample ${h}x${w} to ${th}x${tw} (levels must differ by stride 2)`,
      );
    }
    if (dh > 0 || dw > 0) {
      y = tf.layers
        .cropping2D({
          cropping: [
            [0, dh],
            [0, dw],
          ],
          name: `${name}.crop`,
        })
        .apply(y) as tf.SymbolicTensor;
    }
  }
  return y;
}
