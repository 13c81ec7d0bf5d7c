// @bmc/infer benchmarks (run after `pnpm build`):
// 1. End-to-end `bmc detect` per image (PNG decode, preprocess, onnxruntime-node network,
//    post-processing) on a 512x512 synthetic smear, for full-size detectors built by @bmc/heads-iou
//    (default initialisation, exported by @bmc/export) in float and INT8 (`bmc export --int8`,
//    calibrated on other synthetic smears), against torchvision's RetinaNet R50-FPN
//    `model(images)` in eval mode at the same input size (its transform, network and
//    post-processing), all three measured in alternation in the same run via Debian's PyTorch.
// 2. The shipped blood-smear detector (@bmc/models, the tiny architecture, trained) in float and
//    INT8 (calibrated on TXL-PBC training images) on the public test split it was never trained on:
//    COCO AP / AP50 of both (pycocotools-identical @bmc/metrics) and the end-to-end time of both,
//    image by image in alternation.
// 3. Load test of the HTTP service with autocannon on loopback: a fixed number of requests at
//    concurrency 16 against a `bmc-infer serve` child process; throughput, p50/p99, peak RSS, errors.
// The result, with lscpu model + flags and the load average, goes to bench/measured/infer.json.
//
// pnpm bench [-- --size 512 --presets tiny,baseline,thesis --rounds 5 --requests 400 --heavy-requests 16
//              --ap-images 94 --calibration-images 50 --out bench/measured/infer.json]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, machineRecord, medianMs, PYTHON, report, torchAvailable } from '@bmc/bench-utils';
import { encodePng, generateSmear, readYolo, writeFileAtomic } from '@bmc/data';
import { readBmcMetadata } from '@bmc/export/metadata';
import { evaluateCoco } from '@bmc/metrics';
import autocannon from 'autocannon';
import { decodeToPixels, loadDetector } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIZE = Number(arg('size', '512'));
const PRESETS = arg('presets', 'tiny,baseline,thesis').split(',').filter(Boolean);
const AP_IMAGES = Number(arg('ap-images', '94'));
const CALIBRATION_IMAGES = Number(arg('calibration-images', '50'));
const OUT = arg('out', join(here, 'measured', 'infer.json'));
const BMC = join(root, 'apps', 'train', 'bin', 'bmc.mjs');
const DATA = join(root, '..', 'shared', 'data');
const REQUESTS = Number(arg('requests', '400'));
const HEAVY_REQUESTS = Number(arg('heavy-requests', '16'));
const THREADS = Math.min(2, availableParallelism());
const TINY = join(here, '..', 'test', 'fixtures', 'tiny-detector.onnx');

const machine = machineRecord();
const started = new Date().toISOString();

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

/**
 * `bmc export <float.onnx> --int8 --calibration <folder>`, the command a user runs (not cached:
 * the quantiser is part of what is measured). Returns the file and the export's wall seconds.
 */
function int8Onnx(floatFile, calibration, images, out) {
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      BMC,
      'export',
      floatFile,
      '--int8',
      '--calibration',
      calibration,
      '--calibration-images',
      String(images),
      '--out',
      out,
    ],
    { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 },
  );
  if (r.status !== 0) throw new Error(`bmc export --int8 ${floatFile} failed (${r.status}):\n${r.stderr}`);
  console.log(r.stdout.trim());
  return { file: out, seconds: (performance.now() - t0) / 1000 };
}

// Calibration images for the untrained presets: synthetic smears like the timed one, other seeds.
const calibDir = join(dir, 'calibration');
mkdirSync(calibDir, { recursive: true });
for (let i = 0; i < 8; i++)
  await writeFileAtomic(
    join(calibDir, `smear-${i}.png`),
    await encodePng(generateSmear(11, i, { width: SIZE, height: SIZE }).image),
  );

const heavyModels = {};
const speed = {};
for (const preset of PRESETS) {
  const file = await detectorOnnx(preset);
  heavyModels[preset] = file;
  const q = int8Onnx(file, calibDir, 8, join(dirname(file), `${preset}-int8.onnx`));
  const variants = [
    { label: 'float', detector: await loadDetector(file, { threads: THREADS }), file, ms: [], net: [] },
    {
      label: 'INT8',
      detector: await loadDetector(q.file, { threads: THREADS }),
      file: q.file,
      ms: [],
      net: [],
    },
  ];
  // The torchvision reference matters for the full-size models; the tiny preset is compared with itself.
  const torch = hasTorch && preset !== 'tiny' ? startTorch() : undefined;
  if (torch) await torch.ready;
  const ref = [];
  const detectOnce = async (v) => {
    const t0 = performance.now();
    v.last = await v.detector.detect(await decodeToPixels(imageFile), { tileSize: 0 });
    return performance.now() - t0;
  };
  for (const v of variants) await detectOnce(v); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    // Alternating order: drifting load on a shared machine falls on each alike.
    for (const v of r % 2 ? [...variants].reverse() : variants) {
      v.ms.push(await detectOnce(v));
      v.net.push(v.last.timings.networkMs);
    }
    if (torch) ref.push(await torch.run());
  }
  torch?.stop();
  const [f, i8] = variants;
  speed[preset] = {
    floatMs: median(f.ms),
    int8Ms: median(i8.ms),
    floatNetworkMs: median(f.net),
    int8NetworkMs: median(i8.net),
    ...(torch ? { torchvisionMs: median(ref) } : {}),
    int8ExportSeconds: +q.seconds.toFixed(1),
  };
  for (const v of variants) {
    const t = v.last.timings;
    rows.push({
      name: `bmc detect end-to-end, ${preset} ${v.label} (${(statSync(v.file).size / 2 ** 20).toFixed(1)} MiB ONNX), ${SIZE}x${SIZE} PNG`,
      ms: median(v.ms),
      ...(torch
        ? { refMs: median(ref), ref: `torchvision RetinaNet R50-FPN model(images) eval 1x3x${SIZE}x${SIZE}` }
        : {}),
      extra:
        `network ${median(v.net).toFixed(0)} ms, preprocess ${t.preprocessMs.toFixed(1)} ms, post-process ${t.postprocessMs.toFixed(1)} ms, ` +
        `${v.last.detections.length} detections; ${ROUNDS} alternating rounds, [${v.ms.map((x) => x.toFixed(0))}]` +
        (torch ? `, torch [${ref.map((x) => x.toFixed(0))}]` : ''),
    });
  }
  rows.push({
    name: `bmc detect end-to-end, ${preset} INT8 vs float`,
    ms: median(i8.ms),
    refMs: median(f.ms),
    ref: `the same ${preset} model in float`,
    extra: `speed-up ${(median(f.ms) / median(i8.ms)).toFixed(2)}x end-to-end, network alone ${(median(f.net) / median(i8.net)).toFixed(2)}x; bmc export --int8 took ${q.seconds.toFixed(1)} s (8 calibration smears)`,
  });
  for (const v of variants) await v.detector.dispose();
}

// 2. The shipped blood-smear model on real held-out smears: AP and time, float vs INT8.
const SHIPPED = join(root, 'packages', 'models', 'models', 'blood-smear', 'model.onnx');
const SPLITS = join(root, 'packages', 'models', 'train', 'splits', 'shipped.yaml');
const TXL_TRAIN = join(DATA, 'txl-pbc', 'images', 'train');
let accuracy;
if (AP_IMAGES <= 0) {
  notes.push('AP of INT8 vs float skipped (--ap-images 0)');
} else if (!existsSync(SHIPPED) || !existsSync(TXL_TRAIN)) {
  notes.push(`AP of INT8 vs float skipped: ${existsSync(SHIPPED) ? TXL_TRAIN : SHIPPED} not found`);
} else {
  const test = await readYolo(SPLITS, { split: 'test' });
  const images = test.images.slice(0, AP_IMAGES);
  const q = int8Onnx(
    SHIPPED,
    TXL_TRAIN,
    CALIBRATION_IMAGES,
    join(root, 'runs', 'infer', 'blood-smear-int8.onnx'),
  );
  // THREADS threads per detection (bmc detect's default) and 1 (bmc serve's per-detection default).
  const part = () => ({ decode: 0, preprocess: 0, network: 0, postprocess: 0 });
  const variants = [
    { label: 'float', threads: THREADS, detector: await loadDetector(SHIPPED, { threads: THREADS }) },
    { label: 'INT8', threads: THREADS, detector: await loadDetector(q.file, { threads: THREADS }) },
    { label: 'float', threads: 1, detector: await loadDetector(SHIPPED, { threads: 1 }) },
    { label: 'INT8', threads: 1, detector: await loadDetector(q.file, { threads: 1 }) },
    // onnxruntime's spinning intra-op threads (on before bmc turned it off by default).
    {
      label: 'float',
      threads: THREADS,
      spinning: true,
      detector: await loadDetector(SHIPPED, { threads: THREADS, spinning: true }),
    },
    {
      label: 'INT8',
      threads: THREADS,
      spinning: true,
      detector: await loadDetector(q.file, { threads: THREADS, spinning: true }),
    },
  ].map((v) => ({ ...v, ms: 0, dt: [], parts: part() }));
  const gtImages = [];
  const annotations = [];
  for (const [i, img] of images.entries()) {
    gtImages.push({ id: i + 1, width: img.width, height: img.height });
    for (let k = 0; k < img.labels.length; k++) {
      const b = img.boxes.subarray(4 * k, 4 * k + 4);
      // The model is class-agnostic ('cell'), as in its model card: every box is a cell.
      annotations.push({
        id: annotations.length + 1,
        image_id: i + 1,
        category_id: 1,
        bbox: [b[0], b[1], b[2] - b[0], b[3] - b[1]],
        area: (b[2] - b[0]) * (b[3] - b[1]),
        iscrowd: 0,
      });
    }
    const bytes = readFileSync(img.file);
    for (const v of i % 2 ? [...variants].reverse() : variants) {
      const t0 = performance.now();
      const px = await decodeToPixels(bytes);
      v.parts.decode += performance.now() - t0;
      const r = await v.detector.detect(px);
      v.ms += performance.now() - t0;
      v.parts.preprocess += r.timings.preprocessMs;
      v.parts.network += r.timings.networkMs;
      v.parts.postprocess += r.timings.postprocessMs;
      for (const d of r.detections)
        v.dt.push({
          image_id: i + 1,
          category_id: 1,
          bbox: [d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]],
          score: d.score,
        });
    }
  }
  const gt = { images: gtImages, annotations, categories: [{ id: 1, name: 'cell' }] };
  const ap = variants.slice(0, 2).map((v) => {
    const s = evaluateCoco(gt, v.dt).stats;
    return { AP: +s[0].toFixed(4), AP50: +s[1].toFixed(4), AP75: +s[2].toFixed(4) };
  });
  const quantization = readBmcMetadata(readFileSync(q.file)).quantization;
  accuracy = {
    model: 'blood-smear (@bmc/models; tiny architecture, trained on TXL-PBC)',
    testSet: `TXL-PBC public test split (packages/models/train/splits/public-test.txt), ${images.length} images, ${annotations.length} boxes, class-agnostic`,
    calibration: quantization.calibration,
    float: ap[0],
    int8: ap[1],
    dAP: +(ap[1].AP - ap[0].AP).toFixed(4),
    dAP50: +(ap[1].AP50 - ap[0].AP50).toFixed(4),
    floatMsPerImage: +(variants[0].ms / images.length).toFixed(1),
    int8MsPerImage: +(variants[1].ms / images.length).toFixed(1),
    oneThread: {
      floatMsPerImage: +(variants[2].ms / images.length).toFixed(1),
      int8MsPerImage: +(variants[3].ms / images.length).toFixed(1),
    },
    spinningThreads: {
      floatMsPerImage: +(variants[4].ms / images.length).toFixed(1),
      int8MsPerImage: +(variants[5].ms / images.length).toFixed(1),
    },
    // Where the time goes, ms per image (decode: libvips; the rest as detectPixels reports it).
    breakdown: Object.fromEntries(
      variants.map((v) => [
        `${v.label}, ${v.threads} thread${v.threads > 1 ? 's' : ''}${v.spinning ? ', spinning' : ''}`,
        Object.fromEntries(Object.entries(v.parts).map(([k, t]) => [k, +(t / images.length).toFixed(1)])),
      ]),
    ),
    int8ExportSeconds: +q.seconds.toFixed(1),
  };
  rows.push({
    name: `bmc detect end-to-end, blood-smear INT8 vs float, ${images.length} TXL-PBC test smears (tiled at 320)`,
    ms: accuracy.int8MsPerImage,
    refMs: accuracy.floatMsPerImage,
    ref: 'the same model in float',
    extra:
      `speed-up ${(accuracy.floatMsPerImage / accuracy.int8MsPerImage).toFixed(2)}x; AP ${ap[1].AP} vs ${ap[0].AP} (${accuracy.dAP >= 0 ? '+' : ''}${accuracy.dAP}), ` +
      `AP50 ${ap[1].AP50} vs ${ap[0].AP50} (${accuracy.dAP50 >= 0 ? '+' : ''}${accuracy.dAP50}); calibration ${quantization.calibration.images} TXL-PBC training images, ${quantization.calibration.method}`,
  });
  rows.push({
    name: `bmc detect end-to-end, blood-smear INT8 vs float, 1 onnxruntime thread (bmc serve's per-detection default)`,
    ms: accuracy.oneThread.int8MsPerImage,
    refMs: accuracy.oneThread.floatMsPerImage,
    ref: 'the same model in float, 1 thread',
    extra: `speed-up ${(accuracy.oneThread.floatMsPerImage / accuracy.oneThread.int8MsPerImage).toFixed(2)}x; per image ${JSON.stringify(accuracy.breakdown)}`,
  });
  rows.push({
    name: `bmc detect end-to-end, blood-smear, ${THREADS} threads: without spinning (default) vs spinning onnxruntime threads`,
    ms: accuracy.floatMsPerImage,
    refMs: accuracy.spinningThreads.floatMsPerImage,
    ref: 'float with spinning threads',
    extra: `float ${(accuracy.spinningThreads.floatMsPerImage / accuracy.floatMsPerImage).toFixed(2)}x, INT8 ${(accuracy.spinningThreads.int8MsPerImage / accuracy.int8MsPerImage).toFixed(2)}x faster without spinning (INT8 with spinning ${accuracy.spinningThreads.int8MsPerImage} ms)`,
  });
  for (const v of variants) await v.detector.dispose();
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
if (REQUESTS > 0) await loadTest(TINY, REQUESTS, 'tiny model');
if (HEAVY_REQUESTS > 0) {
  for (const preset of PRESETS.filter((p) => p !== 'tiny').slice(0, 1))
    await loadTest(heavyModels[preset], HEAVY_REQUESTS, `${preset} model`);
}

notes.push(
  'Full-size models are untrained (default init, prior probability 0.01). With score mode sqrt(cls*iou), sqrt(0.01 * ~0.5) is above the 0.05 threshold, so every anchor is a candidate and post-processing does its worst case (top-k of all anchors, NMS); with cls it is nearly empty.',
);
const goals = {
  'thesis INT8 at least 2x faster than torchvision RetinaNet R50-FPN (end-to-end)': speed.thesis
    ?.torchvisionMs
    ? {
        speedUp: +(speed.thesis.torchvisionMs / speed.thesis.int8Ms).toFixed(2),
        met: speed.thesis.torchvisionMs / speed.thesis.int8Ms >= 2,
      }
    : 'not measured',
  // The tiny architecture trained (the shipped model) on real smears is the deployment case; the
  // untrained preset's end-to-end time is dominated by its worst-case post-processing (see notes).
  'tiny INT8 at least 1.5x faster than float (end-to-end, shipped blood-smear model on real smears)': accuracy
    ? {
        speedUp: +(accuracy.floatMsPerImage / accuracy.int8MsPerImage).toFixed(2),
        met: accuracy.floatMsPerImage / accuracy.int8MsPerImage >= 1.5,
        speedUpOneThread: +(accuracy.oneThread.floatMsPerImage / accuracy.oneThread.int8MsPerImage).toFixed(
          2,
        ),
        metOneThread: accuracy.oneThread.floatMsPerImage / accuracy.oneThread.int8MsPerImage >= 1.5,
      }
    : 'not measured',
  'baseline INT8 at least 1.5x faster than float (end-to-end)': speed.baseline
    ? {
        speedUp: +(speed.baseline.floatMs / speed.baseline.int8Ms).toFixed(2),
        met: speed.baseline.floatMs / speed.baseline.int8Ms >= 1.5,
      }
    : 'not measured',
  'INT8 AP50 within 0.005 and AP within 0.01 of float (blood-smear, real held-out smears)': accuracy
    ? { dAP50: accuracy.dAP50, dAP: accuracy.dAP, met: accuracy.dAP50 >= -0.005 && accuracy.dAP >= -0.01 }
    : 'not measured',
};
const result = {
  suite: 'infer',
  started,
  date: new Date().toISOString(),
  command: `node packages/infer/bench/infer.bench.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  machine: { ...machine, loadavgAtEnd: loadAverage() },
  onnxruntime: `onnxruntime-node 1.30.0, ${THREADS} intra-op threads, graph optimisation 'all'; PyTorch with ${THREADS} threads`,
  goals,
  speed,
  accuracy,
  rows,
  notes,
};
mkdirSync(dirname(OUT), { recursive: true });
await writeFileAtomic(OUT, `${JSON.stringify(result, null, 2)}\n`);
notes.push(`written to ${relative(process.cwd(), OUT)}`);
report('infer', rows, notes);
console.log(JSON.stringify(goals, null, 2));
