// ATSS label assignment (@bmc/assigners) on the PAN N2-N5 anchors from @bmc/core, for a
// 256x256 image with three ground-truth boxes; prints the positive anchors of each box.
// Plain typed arrays: no TensorFlow.js involved.
//
//   node examples/atss-assign.mjs
import { AtssAssigner, anchorFields } from '@bmc/assigners';
import { generateAnchors, panN2N5AnchorConfig } from '@bmc/core';

const config = panN2N5AnchorConfig();
const anchors = anchorFields(generateAnchors(config, 256, 256), config); // { anchors [N,4], levelCounts, levelStrides }

// [G, 4] xyxy in pixels: a small, a medium and a large object.
const gtBoxes = new Float32Array([20, 30, 44, 50, 100, 100, 160, 170, 10, 120, 230, 250]);
const gtLabels = new Int32Array([0, 1, 0]);

const r = new AtssAssigner().assign({ ...anchors, gtBoxes, gtLabels });

console.log(`anchors: ${anchors.anchors.length / 4}`);
for (let g = 0; g < gtLabels.length; g++) {
  const pos = [];
  for (let i = 0; i < r.gtIndex.length; i++) if (r.gtIndex[i] === g) pos.push(i);
  const meanIou = pos.reduce((s, i) => s + r.iou[i], 0) / Math.max(pos.length, 1);
  console.log(`gt ${g}: ${pos.length} positives, mean IoU ${meanIou.toFixed(3)}`);
}
