// ResNet50 body forward at 256x256 (batch 1): @bmc/backbone on tfjs-wasm vs PyTorch (Debian's
// /usr/bin/python3, 2 threads) measured in the same run. Run after `pnpm build`: pnpm bench
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { report } from '@bmc/bench-utils';
import { resnet } from '../dist/index.js';

const size = Number(process.env.BMC_BENCH_SIZE ?? 256);
const runs = Number(process.env.BMC_BENCH_RUNS ?? 5);
await tf.setBackend('wasm');
await tf.ready();
const input = tf.input({ shape: [size, size, 3] });
const model = tf.model({ inputs: input, outputs: resnet(input, { depth: 50 }).features });
const x = tf.randomNormal([1, size, size, 3]);
const times = [];
for (let i = 0; i < runs + 1; i++) {
  const t0 = performance.now();
  const outs = model.predict(x);
  for (const o of outs) o.dataSync();
  tf.dispose(outs);
  if (i > 0) times.push(performance.now() - t0); // first run warms up
}
const median = (a) => [...a].sort((p, q) => p - q)[Math.floor(a.length / 2)];
const ours = median(times);
const row = { name: `ResNet50 C2..C5 forward ${size}x${size}, tfjs ${tf.getBackend()}`, ms: ours };
console.log(
  `tfjs ${tf.getBackend()}: ResNet50 C2..C5 ${size}x${size} median ${ours.toFixed(1)} ms over ${runs} runs`,
);
if (!existsSync('/usr/bin/python3')) {
  console.log('PyTorch reference skipped: /usr/bin/python3 absent');
} else {
  const code = `
import time, torch, torchvision
torch.set_num_threads(2)
m = torchvision.models.resnet50().eval()
x = torch.randn(1, 3, ${size}, ${size})
def body(x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return [x := l(x) for l in (m.layer1, m.layer2, m.layer3, m.layer4)]
ts = []
with torch.no_grad():
    for i in range(${runs + 1}):
        t = time.perf_counter(); body(x); ts.append((time.perf_counter() - t) * 1000)
print(sorted(ts[1:])[len(ts[1:]) // 2])`;
  const r = spawnSync('/usr/bin/python3', ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0) console.log(`PyTorch reference failed: ${r.stderr.trim().split('\n').pop()}`);
  else {
    const ref = Number(r.stdout.trim());
    Object.assign(row, { refMs: ref, ref: 'PyTorch 1.13 (2 threads)' });
    console.log(
      `PyTorch 2 threads: median ${ref.toFixed(1)} ms; tfjs / PyTorch = ${(ours / ref).toFixed(1)}x`,
    );
  }
}
tf.dispose(x);
model.dispose();
report('backbone', [row]);
