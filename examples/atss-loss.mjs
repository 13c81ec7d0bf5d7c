// ATSS in a custom TensorFlow.js detector's loss: a tiny one-level anchor head (stride 8) whose
// targets come from @bmc/assigners' ATSS on typed arrays, trained for a few steps with a sigmoid
// focal loss on all non-ignored anchors and a GIoU loss on the positives (boxes decoded with
// @bmc/core/tf). Prints the loss before and after, and checks that no tensor leaks.
//
//   node examples/atss-loss.mjs

import { AtssAssigner, anchorFields, IGNORE } from '@bmc/assigners';
import { generateAnchors } from '@bmc/core';
import { alignedGiouTensor, decodeDeltasTensor } from '@bmc/core/tf';
import * as tf from '@tensorflow/tfjs';

await tf.setBackend('cpu');
const [H, W, C] = [64, 64, 2];
const config = { levels: [{ stride: 8, sizes: [16, 24, 32] }], aspectRatios: [0.5, 1, 2] };
const A = config.levels[0].sizes.length * config.aspectRatios.length;
const fields = anchorFields(generateAnchors(config, H, W), config);
const N = fields.anchors.length / 4;

// Targets: ATSS once per image (static assigner: no predictions needed).
const gtBoxes = new Float32Array([8, 10, 30, 28, 36, 30, 60, 62]); // [G, 4] xyxy
const gtLabels = new Int32Array([0, 1]);
const r = new AtssAssigner().assign({ ...fields, gtBoxes, gtLabels });
const pos = [];
for (let i = 0; i < N; i++) if (r.gtIndex[i] >= 0) pos.push(i);
const oneHot = new Float32Array(N * C);
const valid = new Float32Array(N);
for (let i = 0; i < N; i++) {
  if (r.labels[i] >= 0) oneHot[i * C + r.labels[i]] = 1;
  valid[i] = r.labels[i] === IGNORE ? 0 : 1;
}
const t = {
  cls: tf.tensor2d(oneHot, [N, C]),
  valid: tf.tensor2d(valid, [N, 1]),
  pos: tf.tensor1d(Int32Array.from(pos), 'int32'),
  posAnchors: tf.tensor2d(fields.anchors, [N, 4]).gather(Int32Array.from(pos)),
  posGt: tf.tensor2d(gtBoxes, [gtLabels.length, 4]).gather(Int32Array.from(pos, (i) => r.gtIndex[i])),
};

// The detector: stride-8 features, heads flattened to (y, x, anchor) = the anchor order.
const input = tf.input({ shape: [H, W, 3] });
let x = input;
for (const filters of [8, 16, 16]) {
  x = tf.layers.conv2d({ filters, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(x);
}
const cls = tf.layers
  .reshape({ targetShape: [N, C] })
  .apply(tf.layers.conv2d({ filters: A * C, kernelSize: 1 }).apply(x));
const box = tf.layers
  .reshape({ targetShape: [N, 4] })
  .apply(tf.layers.conv2d({ filters: A * 4, kernelSize: 1 }).apply(x));
const model = tf.model({ inputs: input, outputs: [cls, box] });
const image = tf.randomUniform([1, H, W, 3], 0, 1, 'float32', 1);

function loss() {
  const [logits, deltas] = model.apply(image).map((o) => o.squeeze([0]));
  // Sigmoid focal loss (alpha 0.25, gamma 2), normalised by the number of positives.
  const p = tf.sigmoid(logits);
  // Elementwise, numerically stable binary cross-entropy with logits.
  const bce = tf
    .relu(logits)
    .sub(logits.mul(t.cls))
    .add(tf.log1p(tf.exp(tf.abs(logits).neg())));
  const pt = p.mul(t.cls).add(tf.scalar(1).sub(p).mul(tf.scalar(1).sub(t.cls)));
  const alpha = t.cls.mul(0.25).add(tf.scalar(1).sub(t.cls).mul(0.75));
  const focal = bce
    .mul(tf.square(tf.scalar(1).sub(pt)))
    .mul(alpha)
    .mul(t.valid)
    .sum()
    .div(Math.max(pos.length, 1));
  // GIoU loss on positives, boxes decoded from the deltas.
  const decoded = decodeDeltasTensor(deltas.gather(t.pos), t.posAnchors);
  const giou = tf.scalar(1).sub(alignedGiouTensor(decoded, t.posGt)).mean();
  return focal.add(giou);
}

const opt = tf.train.adam(1e-2);
const STEPS = 20;
const first = tf.tidy(() => loss().dataSync()[0]);
opt.minimize(loss); // the first step creates Adam's slot variables; leaks are counted after it
const before = tf.memory().numTensors;
let last = first;
for (let step = 1; step < STEPS; step++) {
  const l = opt.minimize(loss, true);
  last = l.dataSync()[0];
  l.dispose();
}
const leaked = tf.memory().numTensors - before;
const perGt = (g) => pos.filter((i) => r.gtIndex[i] === g).length;
console.log(`anchors: ${N}, positives: ${pos.length} (gt 0: ${perGt(0)}, gt 1: ${perGt(1)})`);
console.log(`loss: ${first.toFixed(4)} -> ${last.toFixed(4)} after ${STEPS} Adam steps`);
console.log(`tensors leaked: ${leaked}`);
