import { OUTPUT_NAMES } from '@bmc/core';
import * as tf from '@tensorflow/tfjs';

export interface HeadOptions {
  numClasses: number;
  /** Anchors per location. Default 9 (3 scales x 3 ratios). */
  numAnchors?: number;
  /** conv3x3 + ReLU layers in each tower. Default 4. */
  numConvs?: number;
  /** The IoU-prediction branch (conv3x3 on the box tower, one logit per anchor). Default true. */
  iouBranch?: boolean;
  /** Initial foreground probability of the classifier (bias = -log((1 - p) / p)). Default 0.01. */
  priorProbability?: number;
  /** Layer-name prefix; default `head.` (torchvision's RetinaNetHead names below it). */
  prefix?: string;
}

/** Output names of the detector model, in this order: @bmc/core's, the ones the ONNX export writes. */
export { OUTPUT_NAMES };

export interface HeadOutputs {
  /** `[N, A, numClasses]` classification logits, anchors in (level, y, x, anchor) order. */
  clsLogits: tf.SymbolicTensor;
  /** `[N, A, 4]` box deltas (dx, dy, dw, dh) against the anchors. */
  boxDeltas: tf.SymbolicTensor;
  /** `[N, A, 1]` IoU logits (before the sigmoid); absent without the IoU branch. */
  iouLogits?: tf.SymbolicTensor;
}

const normal001 = () => tf.initializers.randomNormal({ mean: 0, stddev: 0.01 });

/**
 * RetinaNet's head (torchvision `RetinaNetHead`), shared across levels: a
 * class tower and a box tower of `numConvs` x (conv3x3 + ReLU), then
 * `cls_logits` (A x K) and `bbox_reg` (A x 4) convs; plus, on the box
 * tower, the IoU branch `iou_pred` (A). Conv weights ~ N(0, 0.01), biases 0
 * except the classifier's prior. Each level's NHWC map `[N, H, W, A*K]` is
 * reshaped to `[N, H*W*A, K]` (torch's view/permute gives the same order)
 * and the levels are concatenated.
 */
export function retinanetHead(features: readonly tf.SymbolicTensor[], options: HeadOptions): HeadOutputs {
  if (features.length === 0) throw new RangeError('retinanetHead: no feature levels');
  const channels = features[0]!.shape[3];
  if (channels == null || features.some((f) => f.shape[3] !== channels)) {
    throw new RangeError('retinanetHead: every level needs the same, known channel count');
  }
  const k = options.numClasses;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`retinanetHead: numClasses must be >= 1, got ${k}`);
  const a = options.numAnchors ?? 9;
  const numConvs = options.numConvs ?? 4;
  const p = options.prefix ?? 'head.';
  const prior = options.priorProbability ?? 0.01;
  const conv = (name: string, filters: number, biasInit: number) =>
    tf.layers.conv2d({
      filters,
      kernelSize: 3,
      padding: 'same', // stride 1, pad 1: TF 'same' is symmetric here, exactly torch's padding=1
      name,
      kernelInitializer: normal001(),
      biasInitializer: tf.initializers.constant({ value: biasInit }),
    });
  const tower = (branch: string) =>
    Array.from({ length: numConvs }, (_, i) => ({
      conv: conv(`${p}${branch}.conv.${i}.0`, channels, 0),
      relu: tf.layers.reLU({ name: `${p}${branch}.conv.${i}.1` }),
    }));
  const clsTower = tower('classification_head');
  const boxTower = tower('regression_head');
  const clsConv = conv(`${p}classification_head.cls_logits`, a * k, -Math.log((1 - prior) / prior));
  const boxConv = conv(`${p}regression_head.bbox_reg`, a * 4, 0);
  const iouConv = (options.iouBranch ?? true) ? conv(`${p}regression_head.iou_pred`, a, 0) : null;

  const run = (x: tf.SymbolicTensor, layers: typeof clsTower) =>
    layers.reduce((h, l) => l.relu.apply(l.conv.apply(h)) as tf.SymbolicTensor, x);
  // A static anchor count when the level's size is known, so fixed-size models carry full shapes.
  const flatten = (x: tf.SymbolicTensor, width: number, name: string) => {
    const [h, w, ch] = x.shape.slice(1);
    const rows = h != null && w != null && ch != null ? (h * w * ch) / width : -1;
    return tf.layers.reshape({ targetShape: [rows, width], name }).apply(x) as tf.SymbolicTensor;
  };
  const cls: tf.SymbolicTensor[] = [];
  const box: tf.SymbolicTensor[] = [];
  const iou: tf.SymbolicTensor[] = [];
  const single = features.length === 1;
  features.forEach((f, l) => {
    const ct = run(f, clsTower);
    const bt = run(f, boxTower);
    const name = (what: string) => (single ? what : `${p}${what}.level${l}`);
    cls.push(flatten(clsConv.apply(ct) as tf.SymbolicTensor, k, name(OUTPUT_NAMES.cls)));
    box.push(flatten(boxConv.apply(bt) as tf.SymbolicTensor, 4, name(OUTPUT_NAMES.box)));
    if (iouConv) iou.push(flatten(iouConv.apply(bt) as tf.SymbolicTensor, 1, name(OUTPUT_NAMES.iou)));
  });
  const join = (xs: tf.SymbolicTensor[], name: string) =>
    single ? xs[0]! : (tf.layers.concatenate({ axis: 1, name }).apply(xs) as tf.SymbolicTensor);
  return {
    clsLogits: join(cls, OUTPUT_NAMES.cls),
    boxDeltas: join(box, OUTPUT_NAMES.box),
    ...(iouConv ? { iouLogits: join(iou, OUTPUT_NAMES.iou) } : {}),
  };
}
