// Full-size detectors (buildDetector 'thesis' = R50 + PAN-attn N2-N5 + IoU head, and
// 'baseline' = torchvision's RetinaNet R50-FPN P3-P7): ONNX export time, file size,
// onnxruntime-node session load time and inference time against tfjs (wasm backend) in
// the same run, plus full-size parity (ORT vs tfjs) at two input sizes.
// torchvision's RetinaNet R50-FPN forward (body + heads) is the PyTorch reference for
// the baseline when Debian's torch is present.
//
// Run after `pnpm build`: pnpm bench [-- --size 512 --presets thesis,baseline]
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { medianMs, report, runPython, torchAvailable } from '@bmc/bench-utils';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import * as ort from 'onnxruntime-node';
import { detectorMetadata, exportDetectorOnnx, readBmcMetadata, writeFileAtomic } from '../dist/index.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIZE = Number(arg('size', '512'));
const PRESETS = arg('presets', 'thesis,baseline').split(',');
const THREADS = 2;

function lcg(seed) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** Same scheme as test/helpers.ts: activations stay O(1), BN statistics are non-trivial. */
function randomizeWeights(model, seed) {
  const r = lcg(seed);
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (ws.length === 0) continue;
    const fresh = ws.map((w, i) => {
      const name = layer.weights[i].originalName;
      let lo = -0.2;
      let hi = 0.2;
      if (name.endsWith('variance')) [lo, hi] = [0.5, 2];
      else if (name.endsWith('gamma')) [lo, hi] = [0.5, 1.5];
      else if (w.rank >= 2) {
        const b = Math.sqrt(3 / w.shape.slice(0, -1).reduce((a, d) => a * d, 1));
        [lo, hi] = [-b, b];
      } else if (name.endsWith('bias')) [lo, hi] = [-0.1, 0.1];
      const v = new Float32Array(w.size);
      for (let j = 0; j < v.length; j++) v[j] = lo + (hi - lo) * r();
      return tf.tensor(v, w.shape);
    });
    layer.setWeights(fresh);
    tf.dispose(fresh);
  }
}

function nchw(x, h, w) {
  const out = new Float32Array(x.length);
  for (let y = 0; y < h; y++)
    for (let i = 0; i < w; i++) for (let c = 0; c < 3; c++) out[(c * h + y) * w + i] = x[(y * w + i) * 3 + c];
  return out;
}

async function tfRun(model, x, h, w) {
  const ys = tf.tidy(() => model.predict(tf.tensor(x, [1, h, w, 3])));
  const data = await Promise.all(ys.map((t) => t.data()));
  tf.dispose(ys);
  return data;
}

async function ortRun(session, x, h, w) {
  const out = await session.run({ images: new ort.Tensor('float32', nchw(x, h, w), [1, 3, h, w]) });
  return session.outputNames.map((n) => out[n].data);
}

function parity(a, b) {
  let diff = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    lo = Math.min(lo, a[i]);
    hi = Math.max(hi, a[i]);
  }
  return { diff, range: hi - lo };
}

await tf.setBackend('wasm');
await tf.ready();

const rows = [];
const notes = [
  `tfjs backend ${tf.getBackend()} (1 thread); onnxruntime-node ${ort.env.versions?.node ?? '1.30'} with ${THREADS} intra-op threads, graph optimisation 'all'`,
];
const dir = join(process.cwd(), '..', '..', 'runs', 'export');

for (const preset of PRESETS) {
  const det = buildDetector(preset);
  randomizeWeights(det.model, 7);
  const params = det.model.countParams();

  const t0 = performance.now();
  const { bytes, summary } = exportDetectorOnnx(
    det.model,
    detectorMetadata(det.config, { model: { preset } }),
  );
  const exportMs = performance.now() - t0;
  const file = join(dir, `${preset}.onnx`);
  writeFileAtomic(file, bytes);
  const mb = statSync(file).size / 2 ** 20;
  readBmcMetadata(bytes, file);

  const t1 = performance.now();
  const session = await ort.InferenceSession.create(file, {
    intraOpNumThreads: THREADS,
    graphOptimizationLevel: 'all',
  });
  const loadMs = performance.now() - t1;

  // Full-size parity at two input sizes (multiples of 32), max |diff| relative to the output range.
  const parityNotes = [];
  for (const [h, w] of [
    [256, 256],
    [SIZE, SIZE],
  ]) {
    const r = lcg(h * 1000 + w);
    const x = Float32Array.from({ length: h * w * 3 }, () => 2 * r() - 1);
    const a = await tfRun(det.model, x, h, w);
    const b = await ortRun(session, x, h, w);
    const parts = det.outputNames.map((n, i) => {
      const p = parity(a[i], b[i]);
      return `${n} ${p.diff.toExponential(2)} / range ${p.range.toFixed(2)} = ${(p.diff / p.range).toExponential(2)}`;
    });
    parityNotes.push(`${preset} parity ${h}x${w}: ${parts.join('; ')}`);
  }

  const r = lcg(1);
  const x = Float32Array.from({ length: SIZE * SIZE * 3 }, () => 2 * r() - 1);
  const ortMs = await medianMs(() => ortRun(session, x, SIZE, SIZE), { warmup: 1, iters: 5 });
  const tfMs = await medianMs(() => tfRun(det.model, x, SIZE, SIZE), { warmup: 1, iters: 3 });
  await session.release();

  rows.push({
    name: `${preset}: export to ONNX (${summary.nodes} nodes, ${summary.foldedBatchNorms} BN folded)`,
    ms: exportMs,
    extra: `${mb.toFixed(1)} MiB, ${(params / 1e6).toFixed(2)} M tfjs params`,
  });
  rows.push({ name: `${preset}: onnxruntime-node session load`, ms: loadMs });
  rows.push({
    name: `${preset}: onnxruntime-node 1x3x${SIZE}x${SIZE}`,
    ms: ortMs,
    refMs: tfMs,
    ref: 'tfjs wasm',
  });
  notes.push(...parityNotes);
  det.model.dispose();
}

if (PRESETS.includes('baseline') && torchAvailable()) {
  const ref = runPython(`
import torchvision
m = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None).eval()
x = torch.rand(1, 3, ${SIZE}, ${SIZE})
with torch.no_grad():
    ms = median_ms(lambda: m.head(list(m.backbone(x).values())), warmup=1, iters=5)
print(json.dumps({'ms': ms}))`);
  const ort = rows.find((r) => r.name.startsWith('baseline: onnxruntime-node 1x3'));
  rows.push({
    name: `baseline: PyTorch 1.13 torchvision RetinaNet R50-FPN body+heads 1x3x${SIZE}x${SIZE}`,
    ms: ref.ms,
  });
  if (ort)
    rows.push({
      name: 'baseline: onnxruntime-node vs PyTorch',
      ms: ort.ms,
      refMs: ref.ms,
      ref: 'PyTorch (2 threads)',
    });
} else if (PRESETS.includes('baseline')) {
  notes.push('PyTorch reference skipped: /usr/bin/python3 with torch/torchvision not found');
}

// The published model in PyTorch: the same architecture, written out in tooling/bench/thesis_model.py
// (its trainable parameter count equals ours), eval-mode forward under no_grad.
if (PRESETS.includes('thesis') && torchAvailable()) {
  const script = fileURLToPath(new URL('../../../tooling/bench/thesis_model.py', import.meta.url));
  const ref = runPython(
    `import runpy, sys\nsys.argv = [${JSON.stringify(script)}, 'thesis', '5', '${SIZE}', '1', 'infer']\nrunpy.run_path(sys.argv[0], run_name='__main__')`,
  );
  const ort = rows.find((r) => r.name.startsWith('thesis: onnxruntime-node 1x3'));
  rows.push({
    name: `thesis: PyTorch 1.13 same architecture (tooling/bench/thesis_model.py) 1x3x${SIZE}x${SIZE}`,
    ms: ref.ms,
  });
  if (ort)
    rows.push({
      name: 'thesis: onnxruntime-node vs PyTorch',
      ms: ort.ms,
      refMs: ref.ms,
      ref: 'PyTorch (2 threads)',
    });
} else if (PRESETS.includes('thesis')) {
  notes.push('thesis PyTorch reference skipped: /usr/bin/python3 with torch/torchvision not found');
}

report('export', rows, notes);
