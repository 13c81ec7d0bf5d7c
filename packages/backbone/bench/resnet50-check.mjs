// Runs a full-size ResNet50 built by @bmc/backbone on the files tooling/network_resnet50_check.py
// wrote and prints the differences to torchvision's C2..C5. Usage: node resnet50-check.mjs DIR
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { importResNetSafetensors, resnet } from '../dist/index.js';

const dir = process.argv[2] ?? '/tmp/bmc_resnet50_check';
const backend = (await tf.setBackend('wasm')) ? 'wasm' : 'cpu';
if (backend === 'cpu') await tf.setBackend('cpu');
await tf.ready();
const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
const f32 = (name) => {
  const b = readFileSync(join(dir, name));
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};
const [, h, w] = meta.input;
const input = tf.input({ shape: [h, w, 3] });
const model = tf.model({ inputs: input, outputs: resnet(input, { depth: 50 }).features });
const report = importResNetSafetensors(
  model,
  new Uint8Array(readFileSync(join(dir, 'resnet50.safetensors'))),
  {
    source: 'resnet50.safetensors',
  },
);
console.log(
  `loaded ${report.loaded.length} tensors, ignored ${report.ignored.length} (${report.ignored.filter((k) => !k.endsWith('num_batches_tracked')).join(', ')})`,
);
const x = tf.tensor(f32('input.f32'), meta.input);
const t0 = performance.now();
const outs = model.predict(x);
const data = outs.map((o) => o.dataSync());
const ms = performance.now() - t0;
let worst = 0;
data.forEach((got, i) => {
  const ref = f32(`c${i + 2}.f32`);
  let diff = 0;
  let scale = 0;
  for (let j = 0; j < ref.length; j++) {
    diff = Math.max(diff, Math.abs(got[j] - ref[j]));
    scale = Math.max(scale, Math.abs(ref[j]));
  }
  worst = Math.max(worst, diff / scale);
  console.log(
    `C${i + 2} [${meta.features[i]}]: max |diff| ${diff.toExponential(3)}, max |ref| ${scale.toFixed(3)}, relative ${(diff / scale).toExponential(3)}`,
  );
});
console.log(
  `image ${meta.image} ${h}x${w}, tfjs ${backend} forward ${ms.toFixed(0)} ms; worst relative max diff ${worst.toExponential(3)} (${worst < 1e-4 ? 'PASS' : 'FAIL'} at 1e-4)`,
);
tf.dispose([x, ...outs]);
process.exitCode = worst < 1e-4 ? 0 : 1;
