// A ResNet-18/34 body (torchvision's layout: 7x7/2 stem, 3x3/2 max-pool, basic
// blocks, 1x1/2 downsample) in plain tfjs ops with inference-mode BatchNorm,
// for training-step benchmarks. Pads are explicit and symmetric like PyTorch's.
import * as tf from '@tensorflow/tfjs';

const BLOCKS = { 18: [2, 2, 2, 2], 34: [3, 4, 6, 3] };

export function buildResNet({ depth = 18, seed = 1, width = 64 } = {}) {
  let s = seed;
  const vars = [];
  const trainable = [];
  const conv = (k, cin, cout) => {
    const w = tf.variable(
      tf.randomNormal([k, k, cin, cout], 0, Math.sqrt(2 / (k * k * cin)), 'float32', s++),
    );
    vars.push(w);
    trainable.push(w);
    return w;
  };
  const bn = (c) => {
    const p = {
      gamma: tf.variable(tf.randomUniform([c], 0.5, 1.5, 'float32', s++)),
      beta: tf.variable(tf.randomUniform([c], -0.1, 0.1, 'float32', s++)),
      mean: tf.keep(tf.randomUniform([c], -0.1, 0.1, 'float32', s++)),
      variance: tf.keep(tf.randomUniform([c], 0.5, 1.5, 'float32', s++)),
    };
    vars.push(p.gamma, p.beta, p.mean, p.variance);
    trainable.push(p.gamma, p.beta); // running statistics are constants, as in PyTorch's eval mode
    return p;
  };
  const stem = { w: conv(7, 3, width), bn: bn(width) };
  const layers = [];
  let cin = width;
  BLOCKS[depth].forEach((n, li) => {
    const cout = width * 2 ** li;
    for (let b = 0; b < n; b++) {
      const stride = b === 0 && li > 0 ? 2 : 1;
      layers.push({
        stride,
        w1: conv(3, cin, cout),
        bn1: bn(cout),
        w2: conv(3, cout, cout),
        bn2: bn(cout),
        down: stride !== 1 || cin !== cout ? { w: conv(1, cin, cout), bn: bn(cout) } : null,
      });
      cin = cout;
    }
  });
  return { stem, layers, trainable, dispose: () => tf.dispose(vars) };
}

const pad = (p) => [
  [0, 0],
  [p, p],
  [p, p],
  [0, 0],
];
// Inference-mode BN as the affine map it is, y = x * s + (beta - mean * s) with
// s = gamma / sqrt(var + eps): same values and gradients as tf.batchNorm, but
// tf.batchNorm's gradient broadcasts with Tile, which alone took ~40% of a
// wasm ResNet18 step in our profile.
const bnApply = (x, p) => {
  const s = tf.mul(p.gamma, tf.rsqrt(tf.add(p.variance, 1e-5)));
  return tf.add(tf.mul(x, s), tf.sub(p.beta, tf.mul(p.mean, s)));
};

export function resnetForward(m, x) {
  let y = tf.relu(bnApply(tf.conv2d(x, m.stem.w, 2, pad(3)), m.stem.bn));
  y = tf.maxPool(tf.pad(y, pad(1), Number.NEGATIVE_INFINITY), 3, 2, 'valid');
  for (const b of m.layers) {
    const r = b.down ? bnApply(tf.conv2d(y, b.down.w, b.stride, 'valid'), b.down.bn) : y;
    let z = tf.relu(bnApply(tf.conv2d(y, b.w1, b.stride, pad(1)), b.bn1));
    z = bnApply(tf.conv2d(z, b.w2, 1, pad(1)), b.bn2);
    y = tf.relu(tf.add(z, r));
  }
  return y;
}

export const resnetLoss = (m, x) => tf.mean(resnetForward(m, x));
