import * as tf from '@tensorflow/tfjs';

export interface FrozenBatchNormArgs {
  name?: string;
  /** Added to the running variance, torch's default 1e-5. */
  epsilon?: number;
}

/**
 * BatchNorm with fixed statistics, as torchvision's `FrozenBatchNorm2d`:
 * `y = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps))`
 * in training and inference alike. A stock `BatchNormalization` with
 * `trainable: false` still normalises with batch statistics (and updates its
 * moving averages) when called with `training: true`, which is not what a
 * detection backbone fine-tuned from ImageNet wants.
 *
 * Weights are named like `BatchNormalization`'s (`gamma`, `beta`,
 * `moving_mean`, `moving_variance`, last axis) so exporters and weight
 * import treat both alike; all four are non-trainable.
 */
export class FrozenBatchNorm extends tf.layers.Layer {
  static className = 'FrozenBatchNorm';
  readonly epsilon: number;
  private gamma?: tf.LayerVariable;
  private beta?: tf.LayerVariable;
  private movingMean?: tf.LayerVariable;
  private movingVariance?: tf.LayerVariable;

  constructor(args: FrozenBatchNormArgs = {}) {
    super({ ...(args.name ? { name: args.name } : {}), trainable: false });
    this.epsilon = args.epsilon ?? 1e-5;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (channels == null)
      throw new Error(`FrozenBatchNorm ${this.name}: the channel dimension must be known`);
    const add = (name: string, init: ReturnType<typeof tf.initializers.ones>) =>
      this.addWeight(name, [channels], 'float32', init, undefined, false);
    this.gamma = add('gamma', tf.initializers.ones());
    this.beta = add('beta', tf.initializers.zeros());
    this.movingMean = add('moving_mean', tf.initializers.zeros());
    this.movingVariance = add('moving_variance', tf.initializers.ones());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      const scale = tf.mul(this.gamma!.read(), tf.rsqrt(tf.add(this.movingVariance!.read(), this.epsilon)));
      const shift = tf.sub(this.beta!.read(), tf.mul(this.movingMean!.read(), scale));
      return frozenAffine(x, scale, shift);
    });
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}

tf.serialization.registerClass(FrozenBatchNorm);

/**
 * `x * scale + shift` as one differentiable op whose gradient is `dy * scale`: the same values as the
 * separate Mul and Add (whose gradients reduce to exactly that product), but it keeps only `scale` for
 * the backward pass. Mul and Add would each keep their full-size inputs (the convolution output and the
 * product), two activation-sized tensors per BatchNorm that the gradient never reads.
 */
function frozenAffine(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([scale]);
    return {
      value: tf.add(tf.mul(input, scale), shift),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => tf.mul(dy as tf.Tensor, saved[0]!),
    };
  });
  return op(x) as tf.Tensor;
}
