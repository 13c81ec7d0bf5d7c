import * as tf from '@tensorflow/tfjs';

export interface FocalOptions {
  /** Weight of positives (negatives get 1 - alpha); a negative value disables it, as torchvision. Default 0.25. */
  alpha?: number;
  /** Focusing exponent. Default 2. */
  gamma?: number;
}

/**
 * Element-wise sigmoid focal loss (torchvision `sigmoid_focal_loss`,
 * reduction 'none'): `BCE(x, t) * (1 - p_t)^gamma * alpha_t`, with the BCE
 * in its stable form `max(x, 0) - x t + log(1 + exp(-|x|))`.
 */
export function sigmoidFocalLoss(
  logits: tf.Tensor,
  targets: tf.Tensor,
  options: FocalOptions = {},
): tf.Tensor {
  const alpha = options.alpha ?? 0.25;
  const gamma = options.gamma ?? 2;
  return tf.tidy(() => {
    const p = tf.sigmoid(logits);
    const ce = bceWithLogits(logits, targets);
    // 1 - p_t = p (1 - t) + (1 - p) t
    const oneMinusPt = tf.add(tf.mul(p, tf.sub(1, targets)), tf.mul(tf.sub(1, p), targets));
    let loss = tf.mul(ce, gamma === 0 ? 1 : gamma === 2 ? tf.square(oneMinusPt) : tf.pow(oneMinusPt, gamma));
    if (alpha >= 0)
      loss = tf.mul(loss, tf.add(tf.mul(targets, alpha), tf.mul(tf.sub(1, targets), 1 - alpha)));
    return loss;
  });
}

/** Element-wise binary cross-entropy on logits, numerically stable. */
export function bceWithLogits(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  return tf.tidy(() =>
    tf.add(tf.sub(tf.relu(logits), tf.mul(logits, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(logits))))),
  );
}
