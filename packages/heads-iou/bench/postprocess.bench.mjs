// Post-processing of one 512x512 image with bmc's N2-N5 anchors (195,840 anchors, 11 classes):
// ours (plain JS) vs torchvision's RetinaNet.postprocess_detections (PyTorch, 2 threads) in the same run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { report } from '@bmc/bench-utils';
import { generateAnchors, panN2N5AnchorConfig } from '@bmc/core';
import { postprocessDetections } from '../dist/postprocess.js';

const C = 11;
const anchors = generateAnchors(panN2N5AnchorConfig(), 512, 512);
const A = anchors.boxes.length / 4;
// Deterministic pseudo-random logits: mostly background (as a trained detector), a few confident anchors.
let seed = 1;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const cls = Float32Array.from({ length: A * C }, () => (rand() < 0.002 ? 2 * rand() : -3 - 4 * rand()));
const deltas = Float32Array.from({ length: A * 4 }, () => 0.2 * (rand() - 0.5));
const iou = Float32Array.from({ length: A }, () => 2 * rand() - 1);
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const time = (fn, runs = 7) => {
  fn();
  const ts = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
};
const opts = {
  topK: 1000,
  scoreThreshold: 0.05,
  nmsThreshold: 0.5,
  maxDetections: 100,
  imageSize: [512, 512],
};
const results = {};
const reportRows = [];
for (const mode of ['cls', 'sqrt(cls*iou)']) {
  let n = 0;
  results[mode] = time(() => {
    n = postprocessDetections({ clsLogits: cls, boxDeltas: deltas, iouLogits: iou }, anchors, C, {
      ...opts,
      scoreMode: mode,
    }).scores.length;
  });
  reportRows.push({ name: `postprocessDetections ${mode}, ${A} anchors x ${C} classes`, ms: results[mode] });
  console.log(
    `ours ${mode.padEnd(14)} ${A} anchors x ${C} classes: median ${results[mode].toFixed(1)} ms (${n} detections)`,
  );
}
if (!existsSync('/usr/bin/python3')) {
  console.log('torchvision reference skipped: /usr/bin/python3 absent');
} else {
  const code = `
import sys, time, torch, numpy as np
from torch import nn
from torchvision.models.detection import RetinaNet
torch.set_num_threads(2)
A, C = ${A}, ${C}
raw = np.frombuffer(sys.stdin.buffer.read(), dtype='<f4')
cls = torch.from_numpy(raw[:A*C].copy()).view(1, A, C); d = torch.from_numpy(raw[A*C:A*C+A*4].copy()).view(1, A, 4)
anchors = torch.from_numpy(raw[A*C+A*4:].copy()).view(A, 4)
counts = [${Array.from(anchors.levelCounts).join(',')}]
body = nn.Identity(); body.out_channels = 8
m = RetinaNet(body, C, score_thresh=0.05, topk_candidates=1000, nms_thresh=0.5, detections_per_img=100)
split = lambda t: list(t.split(counts, dim=1))
run = lambda: m.postprocess_detections({'cls_logits': split(cls), 'bbox_regression': split(d)}, [list(anchors.split(counts))], [(512, 512)])
run(); ts = []
for _ in range(7):
    t = time.perf_counter(); r = run(); ts.append((time.perf_counter() - t) * 1000)
print(sorted(ts)[3], len(r[0]['scores']))`;
  const input = Buffer.concat(
    [cls, deltas, anchors.boxes].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)),
  );
  const r = spawnSync('/usr/bin/python3', ['-c', code], { input, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) console.log(`torchvision reference failed: ${r.stderr.trim().split('\n').pop()}`);
  else {
    const [ms, n] = r.stdout.trim().split(/\s+/).map(Number);
    reportRows[0] = { ...reportRows[0], refMs: ms, ref: 'torchvision postprocess_detections (2 threads)' };
    console.log(
      `torchvision postprocess_detections (cls): median ${ms.toFixed(1)} ms (${n} detections); ours / torchvision = ${(results.cls / ms).toFixed(2)}x`,
    );
  }
}
report('postprocess', reportRows);
