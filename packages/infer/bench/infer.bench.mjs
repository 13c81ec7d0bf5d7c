// @bmc/infer benchmarks (run after `pnpm build`):
// 1. End-to-end `bmc detect` per image (PNG decode, letterbox + normalise, onnxruntime-node network,
//    post-processing) on a 512x512 synthetic smear, for full-size detectors built by @bmc/heads-iou
//    (default initialisation, exported by @bmc/export), against torchvision's RetinaNet R50-FPN
//    `model(images)` in eval mode at the same input size (its transform, network and
//    post-processing), measured in the same run via Debian's PyTorch.
// 2. Load test of the HTTP service with autocannon on loopback: a fixed number of requests at
//    concurrency 16 against a `bmc-infer serve` child process; throughput, p50/p99, peak RSS, errors.
//
// pnpm bench [-- --size 512 --presets baseline,thesis --rounds 5 --requests 400 --heavy-requests 16]
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { medianMs, PYTHON, report, torchAvailable } from '@bmc/bench-utils';
import { encodePng, generateSmear, writeFileAtomic } from '@bmc/data';
import autocannon from 'autocannon';
import { decodeToPixels, loadDetector } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIZE = Number(arg('size', '512'));
const PRESETS = arg('presets', 'baseline,thesis').split(',').filter(Boolean);
const REQUESTS = Number(arg('requests', '400'));
const HEAVY_REQUESTS = Number(arg('heavy-requests', '16'));
const THREADS = Math.min(2, availableParallelism());
const TINY = join(here, '..', 'test', 'fixtures', 'tiny-detector.onnx');

const rows = [];
const notes = [
  `onnxruntime-node 1.30.0, ${THREADS} intra-op threads, graph optimisation 'all'; PyTorch with ${THREADS} threads`,
];

/** A full-size detector ONNX: buildDetector(preset) with its default init, exported with bmc metadata (cached). */
async function detectorOnnx(preset) {
  const file = join(root, 'runs', 'infer', `${preset}.onnx`);
  if (existsSync(file)) return file;
  const tf = await import('@tensorflow/tfjs');
  const { buildDetector } = await import('@bmc/heads-iou');
  const { detectorMetadata, exportDetectorOnnx } = await import('@bmc/export');
  await tf.setBackend('cpu');
  const det = buildDetector(preset);
  const { bytes } = exportDetectorOnnx(
    det.model,
    detectorMetadata(det.config, {
      classNames: ['cell'],
      model: { name: preset, note: 'untrained (default init), for timing only' },
    }),
  );
  det.model.dispose();
  mkdirSync(dirname(file), { recursive: true });
  await writeFileAtomic(file, bytes);
  return file;
}

const dir = join(tmpdir(), `bmc-infer-bench-${process.pid}`);
mkdirSync(dir, { recursive: true });
const smear = generateSmear(3, 0, { width: SIZE, height: SIZE });
const imageFile = join(dir, 'smear.png');
const png = await encodePng(smear.image);
await writeFileAtomic(imageFile, png);

// 1. End-to-end detect per image vs torchvision. The machine is shared and its load drifts, so
// the two are measured in alternation: a persistent PyTorch process runs one `model(images)` per
// request between our runs, and each side reports the median of its rounds.
const hasTorch = torchAvailable();
if (!hasTorch) notes.push('torchvision reference skipped: /usr/bin/python3 with torch/torchvision not found');

function startTorch() {
  const py = spawn(
    PYTHON,
    [
      '-u',
      '-c',
      `
import sys, time, json, torch, torchvision
torch.set_num_threads(${THREADS})
m = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None, min_size=${SIZE}, max_size=${SIZE}).eval()
x = [torch.rand(3, ${SIZE}, ${SIZE})]
with torch.no_grad():
    m(x)
    print('ready', flush=True)
    for line in sys.stdin:
        t0 = time.perf_counter(); m(x); print((time.perf_counter() - t0) * 1000, flush=True)
`,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = [];
  const waiters = [];
  let buf = '';
  py.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const next = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => waiters.push(r)));
  return {
    ready: next(),
    run: async () => {
      py.stdin.write('run\n');
      return Number(await next());
    },
    stop: () => py.stdin.end(),
  };
}

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const ROUNDS = Number(arg('rounds', '5'));
const heavyModels = {};
for (const preset of PRESETS) {
  const file = await detectorOnnx(preset);
  heavyModels[preset] = file;
  const detector = await loadDetector(file, { threads: THREADS });
  const torch = hasTorch ? startTorch() : undefined;
  if (torch) await torch.ready;
  let last;
  const ours = [];
  const ref = [];
  const detectOnce = async () => {
    const t0 = performance.now();
    last = await detector.detect(await decodeToPixels(imageFile), { tileSize: 0 });
    return performance.now() - t0;
  };
  await detectOnce(); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    ours.push(await detectOnce());
    if (torch) ref.push(await torch.run());
  }
  torch?.stop();
  const t = last.timings;
  rows.push({
    name: `bmc detect end-to-end, ${preset} (${(statSync(file).size / 2 ** 20).toFixed(0)} MiB ONNX), ${SIZE}x${SIZE} PNG`,
    ms: median(ours),
    ...(torch
      ? { refMs: median(ref), ref: `torchvision RetinaNet R50-FPN model(images) eval 1x3x${SIZE}x${SIZE}` }
      : {}),
    extra:
      `network ${t.networkMs.toFixed(0)} ms, preprocess ${t.preprocessMs.toFixed(1)} ms, post-process ${t.postprocessMs.toFixed(1)} ms, ` +
      `${last.detections.length} detections; ${ROUNDS} alternating rounds, ours [${ours.map((v) => v.toFixed(0))}], torch [${ref.map((v) => v.toFixed(0))}]`,
  });
  await detector.dispose();
}
{
  const detector = await loadDetector(TINY, { threads: THREADS });
  const ms = await medianMs(async () => detector.detect(await decodeToPixels(imageFile)), {
    warmup: 3,
    iters: 15,
  });
  rows.push({ name: `bmc detect end-to-end, tiny test fixture model, ${SIZE}x${SIZE} PNG`, ms });
  // A whole field far above the training size, tiled (1024 px tiles, 128 px overlap).
  const big = generateSmear(4, 0, { width: 3000, height: 2000 });
  const bigFile = join(dir, 'field.png');
  await writeFileAtomic(bigFile, await encodePng(big.image));
  let res;
  const bigMs = await medianMs(async () => (res = await detector.detect(await decodeToPixels(bigFile))), {
    warmup: 1,
    iters: 3,
  });
  rows.push({
    name: 'bmc detect, tiny model, 3000x2000 field tiled',
    ms: bigMs,
    extra: `${res.tiles} tiles, ${res.detections.length} cells`,
  });
  await detector.dispose();
}

// 2. Load test: the service in a child process (its peak RSS is the service's alone).
async function loadTest(model, amount, label) {
  const bin = join(here, '..', 'bin', 'bmc-infer.mjs');
  const child = spawn(
    process.execPath,
    [
      bin,
      'serve',
      '-m',
      model,
      '--port',
      '0',
      '--threads',
      String(THREADS),
      '--concurrency',
      '1',
      '--max-queue',
      '64',
      '--timeout',
      '600000',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = buf.match(/"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  child.stdout.resume();
  try {
    // Warm up (first run allocates onnxruntime's arenas).
    await fetch(`${url}/v1/detect`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    const result = await autocannon({
      url: `${url}/v1/detect`,
      method: 'POST',
      headers: { 'content-type': 'image/png' },
      body: png,
      connections: 16,
      amount,
      timeout: 600,
    });
    const health = await (await fetch(`${url}/healthz`)).json();
    const errors = result.errors + result.timeouts + result.non2xx;
    rows.push({
      name: `load test ${label}: ${amount} POST /v1/detect (${SIZE}x${SIZE} PNG), 16 connections`,
      ms: result.latency.p50,
      extra:
        `throughput ${(result.requests.total / (result.duration || 1)).toFixed(2)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ` +
        `peak RSS ${(health.memory.peakRssBytes / 2 ** 20).toFixed(0)} MiB, ${result.requests.total} answered, ${errors} errors/non-2xx`,
    });
    if (errors)
      notes.push(
        `load test ${label}: ${errors} errors (errors ${result.errors}, timeouts ${result.timeouts}, non-2xx ${result.non2xx})`,
      );
  } finally {
    child.kill('SIGTERM');
  }
}
await loadTest(TINY, REQUESTS, 'tiny model');
if (HEAVY_REQUESTS > 0) {
  for (const preset of PRESETS.slice(0, 1))
    await loadTest(heavyModels[preset], HEAVY_REQUESTS, `${preset} model`);
}

notes.push(
  'Full-size models are untrained (default init, prior probability 0.01). With score mode sqrt(cls*iou), sqrt(0.01 * ~0.5) is above the 0.05 threshold, so every anchor is a candidate and post-processing does its worst case (top-k of all anchors, NMS); with cls it is nearly empty.',
);
report('infer', rows, notes);
