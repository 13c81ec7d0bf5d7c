// IoU matrix 20 x 200,000 and NMS on 10,000 boxes, against torchvision in the same run.
import { medianMs, report, runPython, torchAvailable } from '@bmc/bench-utils';
import { batchedNms, boxIou, nms } from '../dist/index.js';

// A deterministic generator so both sides see identical boxes.
function lcg(seed) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
function randomBoxes(n, size, maxWh, seed) {
  const r = lcg(seed);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const x = r() * size;
    const y = r() * size;
    out.set([x, y, x + 1 + r() * maxWh, y + 1 + r() * maxWh], i * 4);
  }
  return out;
}

const gts = randomBoxes(20, 512, 80, 1);
const anchors = randomBoxes(200_000, 512, 128, 2);
const nmsBoxes = randomBoxes(10_000, 1024, 64, 3);
const rs = lcg(4);
const scores = Float32Array.from({ length: 10_000 }, () => rs());
const classes = Int32Array.from({ length: 10_000 }, (_, i) => i % 3);

const rows = [
  { name: 'boxIou 20 x 200,000', ms: await medianMs(() => boxIou(gts, anchors)) },
  { name: 'nms 10,000 boxes @0.5', ms: await medianMs(() => nms(nmsBoxes, scores, 0.5)) },
  {
    name: 'batchedNms 10,000 boxes, 3 classes @0.5',
    ms: await medianMs(() => batchedNms(nmsBoxes, scores, classes, { iouThreshold: 0.5 })),
  },
];

const notes = [];
if (torchAvailable()) {
  const payload = JSON.stringify({
    gts: Array.from(gts),
    anchors: Array.from(anchors),
    boxes: Array.from(nmsBoxes),
    scores: Array.from(scores),
    classes: Array.from(classes),
  });
  const { writeFileSync } = await import('node:fs');
  const tmp = `/tmp/bmc-core-bench-${process.pid}.json`;
  writeFileSync(tmp, payload);
  const ref = runPython(`
import torchvision
d = json.load(open(${JSON.stringify(tmp)}))
g = torch.tensor(d['gts']).view(-1, 4); a = torch.tensor(d['anchors']).view(-1, 4)
b = torch.tensor(d['boxes']).view(-1, 4); s = torch.tensor(d['scores']); c = torch.tensor(d['classes'])
print(json.dumps({
  'iou': median_ms(lambda: torchvision.ops.box_iou(g, a)),
  'nms': median_ms(lambda: torchvision.ops.nms(b, s, 0.5)),
  'batched': median_ms(lambda: torchvision.ops.batched_nms(b, s, c, 0.5)),
  'keep': torchvision.ops.nms(b, s, 0.5).shape[0],
}))`);
  rows[0].refMs = ref.iou;
  rows[1].refMs = ref.nms;
  rows[2].refMs = ref.batched;
  for (const r of rows) r.ref = 'torchvision 0.14 (2 threads)';
  const ours = nms(nmsBoxes, scores, 0.5).length;
  notes.push(`nms kept ${ours} boxes, torchvision kept ${ref.keep}`);
} else {
  notes.push('torchvision reference skipped: /usr/bin/python3 with torch not found');
}
report('core', rows, notes);
