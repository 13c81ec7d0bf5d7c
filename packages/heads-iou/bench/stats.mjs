// Parameter and MAC counts of the assembled detectors, with torchvision's RetinaNet R50-FPN count
// computed in the same run (Debian's /usr/bin/python3). Run after `pnpm build`:
//   pnpm --filter @bmc/heads-iou stats        (BMC_STATS_SIZE=512 by default, BMC_STATS_CLASSES=1)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { countParameters } from '@bmc/backbone';
import { modelStats } from '@bmc/metrics/model-stats';
import * as tf from '@tensorflow/tfjs';
import { buildDetector, detectorConfig } from '../dist/index.js';

await tf.setBackend('cpu');
const size = Number(process.env.BMC_STATS_SIZE ?? 512);
const classes = Number(process.env.BMC_STATS_CLASSES ?? 1);
const M = (n) => `${(n / 1e6).toFixed(3)} M`;
const exact = (n) => n.toLocaleString('en-US');
const G = (n) => `${(n / 1e9).toFixed(2)} G`;

function torchvisionCounts() {
  if (!existsSync('/usr/bin/python3')) return null;
  const code = `
import json, torchvision
from torchvision.models import resnet50
from torchvision.models.detection import RetinaNet, retinanet_resnet50_fpn
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d
n = lambda m: sum(p.numel() for p in m.parameters())
body = _resnet_fpn_extractor(resnet50(norm_layer=FrozenBatchNorm2d), 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
print(json.dumps({'bn': n(retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=${classes})),
                  'frozen': n(RetinaNet(body, ${classes}))}))`;
  const r = spawnSync('/usr/bin/python3', ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0) return { error: r.stderr.trim().split('\n').pop() };
  return JSON.parse(r.stdout);
}

/** Parameters (PyTorch convention) per part of the network, from the layer-name prefixes. */
function breakdown(model) {
  const parts = { backbone: 0, fpn: 0, pan: 0, head: 0, iouBranch: 0 };
  for (const layer of model.layers) {
    if (layer.getClassName() === 'FrozenBatchNorm') continue;
    const n = layer.weights
      .filter((w) => !/moving_(mean|variance)$/.test(w.originalName))
      .reduce((s, w) => s + w.shape.reduce((a, d) => a * d, 1), 0);
    if (layer.name.startsWith('backbone.body.')) parts.backbone += n;
    else if (layer.name.startsWith('backbone.fpn.')) parts.fpn += n;
    else if (layer.name.startsWith('backbone.pan.')) parts.pan += n;
    else if (layer.name.includes('iou_pred')) parts.iouBranch += n;
    else parts.head += n;
  }
  return parts;
}

const rows = [];
for (const preset of ['baseline', 'thesis', 'tiny']) {
  const cfg = detectorConfig(preset, { inputSize: [size, size], head: { numClasses: classes } });
  const { model } = buildDetector(cfg);
  // PyTorch-convention parameters (@bmc/backbone) and conv/dense MACs per image (@bmc/metrics).
  const s = {
    ...countParameters(model),
    macs: modelStats(model, { inputShape: [size, size, 3], convention: 'macs' }).macs,
  };
  rows.push({ preset, stats: s, parts: breakdown(model), cfg });
  console.log(
    `${preset.padEnd(9)} params ${exact(s.parameters).padStart(11)}  trainable ${M(s.trainable).padStart(11)}  ` +
      `buffers ${M(s.buffers).padStart(9)}  MACs@${size} ${G(s.macs)} (FLOPs ${G(2 * s.macs)})  ` +
      `layers ${model.layers.length}`,
  );
  model.dispose();
}
const [base, thesis] = rows;
const p = (r) => r.parts;
console.log('\nparameters by part (PyTorch convention):');
for (const r of rows) {
  const x = p(r);
  console.log(
    `  ${r.preset.padEnd(9)} backbone ${M(x.backbone)}, fpn ${M(x.fpn)}, pan ${M(x.pan)}, head ${M(x.head)}, iou branch ${M(x.iouBranch)}`,
  );
}
const d = thesis.stats.parameters - base.stats.parameters;
console.log(
  `\nthesis - baseline: ${d >= 0 ? '+' : ''}${M(d)} parameters (published: +1.58 M, 37.89 M vs 36.31 M), ` +
    `MACs ${d >= 0 ? '+' : ''}${G(thesis.stats.macs - base.stats.macs)} at ${size}x${size}`,
);
console.log(
  `  of which: neck ${M(p(thesis).fpn + p(thesis).pan - p(base).fpn)} (FPN P2-P5 + PAN-attn vs FPN P3-P7), ` +
    `IoU branch ${M(p(thesis).iouBranch)}, head ${M(p(thesis).head - p(base).head)}`,
);

// The published tables come from mmdetection (mmcv counts parameters that require grad): RetinaNet
// R50 with P6 on C5, trainable BatchNorm outside the frozen stem + layer1, 11 classes.
console.log(
  '\nmmdetection-style configuration (P6 from C5, trainable BN, 11 classes), as the published tables:',
);
const published = {};
for (const preset of ['baseline', 'thesis']) {
  const cfg = detectorConfig(preset, {
    neck: preset === 'baseline' ? { extraFrom: 'c5' } : {},
    backbone: { frozenBatchNorm: false },
    head: { numClasses: 11 },
  });
  const { model } = buildDetector(cfg);
  const c = countParameters(model);
  published[preset] = c;
  console.log(
    `  ${preset.padEnd(9)} total ${exact(c.parameters)}, requiring grad ${exact(c.trainable)} (published ${preset === 'baseline' ? '36.31' : '37.89'} M)`,
  );
  model.dispose();
}
console.log(
  `  thesis - baseline (requiring grad): ${M(published.thesis.trainable - published.baseline.trainable)} (published +1.58 M)`,
);

const tv = torchvisionCounts();
if (!tv) {
  console.log('\ntorchvision: /usr/bin/python3 absent, comparison skipped');
} else if (tv.error) {
  console.log(`\ntorchvision: comparison skipped (${tv.error})`);
} else {
  const ours = base.stats.parameters;
  const { model } = buildDetector(
    detectorConfig('baseline', { backbone: { frozenBatchNorm: false }, head: { numClasses: classes } }),
  );
  const oursBn = countParameters(model).parameters;
  model.dispose();
  console.log(`\ntorchvision retinanet_resnet50_fpn(num_classes=${classes}):`);
  console.log(
    `  FrozenBatchNorm2d (as built with pretrained weights): ${tv.frozen}  ours ${ours}  ${tv.frozen === ours ? 'EQUAL' : 'DIFFERENT'}`,
  );
  console.log(
    `  nn.BatchNorm2d (weights=None):                         ${tv.bn}  ours ${oursBn}  ${tv.bn === oursBn ? 'EQUAL' : 'DIFFERENT'}`,
  );
  if (tv.frozen !== ours || tv.bn !== oursBn) process.exitCode = 1;
}
