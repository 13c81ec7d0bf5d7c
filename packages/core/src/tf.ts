/**
 * Tensor versions of the box functions that training differentiates through.
 * Shapes: boxes `[N, 4]` xyxy, results `[N]`. They mirror `alignedIou`,
 * `alignedGiou` and `BoxCoder.decode`, with the same degenerate-box rules.
 */
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_XFORM_CLIP } from './box-coder.js';

const EPS = 1e-7;

function columns(boxes: tf.Tensor2D): [tf.Tensor1D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D] {
  const [x1, y1, x2, y2] = tf.unstack(boxes, 1) as tf.Tensor1D[];
  return [x1!, y1!, x2!, y2!];
}

/** IoU and union parts shared by IoU and GIoU. */
function overlap(a: tf.Tensor2D, b: tf.Tensor2D) {
  const [ax1, ay1, ax2, ay2] = columns(a);
  const [bx1, by1, bx2, by2] = columns(b);
  const areaA = tf.mul(tf.relu(tf.sub(ax2, ax1)), tf.relu(tf.sub(ay2, ay1)));
  const areaB = tf.mul(tf.relu(tf.sub(bx2, bx1)), tf.relu(tf.sub(by2, by1)));
  const iw = tf.relu(tf.sub(tf.minimum(ax2, bx2), tf.maximum(ax1, bx1)));
  const ih = tf.relu(tf.sub(tf.minimum(ay2, by2), tf.maximum(ay1, by1)));
  const inter = tf.mul(iw, ih);
  const union = tf.sub(tf.add(areaA, areaB), inter);
  const iou = tf.div(inter, tf.maximum(union, EPS)) as tf.Tensor1D;
  const ew = tf.sub(tf.maximum(ax2, bx2), tf.minimum(ax1, bx1));
  const eh = tf.sub(tf.maximum(ay2, by2), tf.minimum(ay1, by1));
  return { iou, union, enclosing: tf.mul(ew, eh) };
}

/** Row-wise IoU of two `[N, 4]` tensors: `[N]`. */
export function alignedIouTensor(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => overlap(a, b).iou);
}

/** Row-wise GIoU of two `[N, 4]` tensors: `[N]`. Differentiable in both inputs. */
export function alignedGiouTensor(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const { iou, union, enclosing } = overlap(a, b);
    return tf.sub(iou, tf.div(tf.sub(enclosing, union), tf.maximum(enclosing, EPS))) as tf.Tensor1D;
  });
}

/** `BoxCoder.decode` on tensors: deltas `[N, 4]` applied to anchors `[N, 4]` gives boxes `[N, 4]`. */
export function decodeDeltasTensor(
  deltas: tf.Tensor2D,
  anchors: tf.Tensor2D,
  weights: readonly [number, number, number, number] = [1, 1, 1, 1],
  xformClip = DEFAULT_XFORM_CLIP,
): tf.Tensor2D {
  return tf.tidy(() => {
    const [ax1, ay1, ax2, ay2] = columns(anchors);
    const aw = tf.sub(ax2, ax1);
    const ah = tf.sub(ay2, ay1);
    const acx = tf.add(ax1, tf.mul(aw, 0.5));
    const acy = tf.add(ay1, tf.mul(ah, 0.5));
    const [dx, dy, dw, dh] = columns(deltas);
    const cx = tf.add(tf.mul(tf.div(dx, weights[0]), aw), acx);
    const cy = tf.add(tf.mul(tf.div(dy, weights[1]), ah), acy);
    const hw = tf.mul(tf.mul(tf.exp(tf.minimum(tf.div(dw, weights[2]), xformClip)), aw), 0.5);
    const hh = tf.mul(tf.mul(tf.exp(tf.minimum(tf.div(dh, weights[3]), xformClip)), ah), 0.5);
    return tf.stack([tf.sub(cx, hw), tf.sub(cy, hh), tf.add(cx, hw), tf.add(cy, hh)], 1) as tf.Tensor2D;
  });
}
