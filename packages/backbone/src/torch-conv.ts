import * as tf from '@tensorflow/tfjs';

/** An initializer as the tfjs layer constructors accept it. */
export type LayerInitializer = NonNullable<Parameters<typeof tf.layers.conv2d>[0]['kernelInitializer']>;

export interface TorchConvOptions {
  filters: number;
  kernelSize: number;
  strides?: number;
  /** Symmetric zero padding as in `torch.nn.Conv2d(padding=p)`. Default `(kernelSize - 1) / 2`. */
  padding?: number;
  useBias?: boolean;
  /** Layer name, e.g. `backbone.body.layer1.0.conv1` (the torch parameter prefix). */
  name: string;
  kernelInitializer?: LayerInitializer;
  biasInitializer?: LayerInitializer;
}

/**
 * A `Conv2D` with PyTorch's padding semantics. TensorFlow's 'same' padding puts
 * the extra pixel on the bottom/right for stride 2, torch pads both sides
 * equally, so a 3x3 stride-2 conv with `padding=1` is written as an explicit
 * `ZeroPadding2D` (named `<name>.pad`) followed by a 'valid' conv. Stride-1
 * convs with `padding = (k - 1) / 2` are exactly 'same' and stay one layer.
 */
export function torchConv2d(x: tf.SymbolicTensor, o: TorchConvOptions): tf.SymbolicTensor {
  const strides = o.strides ?? 1;
  const padding = o.padding ?? (o.kernelSize - 1) / 2;
  if (!Number.isInteger(padding) || padding < 0) {
    throw new RangeError(`torchConv2d ${o.name}: padding must be a non-negative integer, got ${padding}`);
  }
  let mode: 'same' | 'valid' = 'valid';
  if (padding > 0) {
    if (strides === 1 && padding * 2 === o.kernelSize - 1) {
      mode = 'same';
    } else {
      x = tf.layers.zeroPadding2d({ padding, name: `${o.name}.pad` }).apply(x) as tf.SymbolicTensor;
    }
  }
  return tf.layers
    .conv2d({
      filters: o.filters,
      kernelSize: o.kernelSize,
      strides,
      padding: mode,
      useBias: o.useBias ?? true,
      name: o.name,
      ...(o.kernelInitializer ? { kernelInitializer: o.kernelInitializer } : {}),
      ...(o.biasInitializer ? { biasInitializer: o.biasInitializer } : {}),
    })
    .apply(x) as tf.SymbolicTensor;
}

/** Marks a layer's weights non-trainable, including the underlying `tf.Variable` (so `optimizer.minimize` skips it). */
export function freezeLayer(layer: tf.layers.Layer): void {
  layer.trainable = false;
  for (const w of layer.weights) w.trainable = false;
}
