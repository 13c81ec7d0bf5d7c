import * as tf from '@tensorflow/tfjs-core';

let registered = false;

/**
 * Re-registers the gradient of `Tile` as one reshape and one sum: `tile(x, reps)` repeats the whole of
 * `x` along each axis, so its gradient is `dy` viewed as `[r0, s0, r1, s1, ...]` summed over the `r`
 * axes. tfjs-core 4.22's Tile_grad.js adds one slice of `dy` per repetition instead (r0 * r1 * ...
 * Slice and Add kernels): tfjs-layers' LayerNormalization tiles its mean, variance, gamma and beta to
 * the input's shape, so a transformer's LayerNorm on 24 crops x 64 tokens ran 1,536 Slice+Add pairs per
 * statistic, most of a ViT step. Same values up to float summation order. Idempotent.
 */
export function registerFastTileGradient(): void {
  if (registered) return;
  tf.registerGradient({
    kernelName: 'Tile',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const { reps } = attrs as unknown as { reps: number[] };
      return {
        x: () => {
          const split = x.shape.flatMap((s, i) => [reps[i]!, s]);
          const repAxes = x.shape.map((_, i) => 2 * i);
          return tf.reshape(tf.sum(tf.reshape(dy as tf.Tensor, split), repAxes), x.shape);
        },
      };
    },
  });
  registered = true;
}
