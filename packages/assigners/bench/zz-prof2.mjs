import { generateAnchors, panN2N5AnchorConfig } from '@bmc/core';
import { anchorFields, createAssigner } from '../dist/index.js';

const config = panN2N5AnchorConfig();
const fields = anchorFields(generateAnchors(config, 512, 512), config);
const n = fields.anchors.length / 4;
let s = 1;
const rand = () => (s = (s * 16807) % 2147483647) / 2147483647;
const g = 50,
  C = 11;
const gtBoxes = new Float32Array(4 * g);
for (let j = 0; j < g; j++) {
  const w = 16 + rand() * 80,
    h = 16 + rand() * 80,
    x = rand() * (512 - w),
    y = rand() * (512 - h);
  gtBoxes.set([x, y, x + w, y + h], 4 * j);
}
const clsProbs = new Float32Array(n * C).map(() => rand() * 0.5);
const input = {
  ...fields,
  gtBoxes,
  gtLabels: new Int32Array(g),
  clsProbs,
  predBoxes: new Float32Array(fields.anchors),
};
for (const type of process.argv.slice(2)) {
  const a = createAssigner({ type });
  const ts = [];
  for (let r = 0; r < 10; r++) {
    const t0 = performance.now();
    a.assign(input);
    ts.push(performance.now() - t0);
  }
  console.log(type, 'min', Math.min(...ts).toFixed(1));
}
