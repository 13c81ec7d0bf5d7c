/// <reference types="vite/client" />
/**
 * The browser viewer: loads a bmc ONNX detector into onnxruntime-web (WASM,
 * threaded when the page is cross-origin isolated) and runs the very same
 * pre- and post-processing code as `bmc detect` (src/pipeline). Nothing is uploaded.
 */
import { type CellCall, type DifferentialCount, UNCLASSIFIED } from '@bmc/classify';
import { type BmcMetadata, readBmcMetadata } from '@bmc/export/metadata';
// The runtime's .wasm is a hashed asset of this build, fetched from the page's own origin (works offline).
import ortWasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';
import {
  type ClassifierMeta,
  type ClassifierRunner,
  cellDifferential,
  classifyBoxes,
  readClassifierMeta,
} from '../pipeline/cell-types.js';
import { detectPixels } from '../pipeline/detect.js';
import { countingThreshold, describeCountingThreshold } from '../pipeline/operating-point.js';
import { checkGraphNames, ortRunner } from '../pipeline/ort-runner.js';
import { type DetectionJson, toDetectionJson } from '../pipeline/results.js';
import { applyPixelScale } from '../pipeline/scale.js';
import type { Detection, DetectResult, NetworkRunner, RawPixels } from '../pipeline/types.js';

const COLOURS = ['#E69F00', '#56B4E9', '#009E73', '#F0E442', '#0072B2', '#D55E00', '#CC79A7', '#000000'];
/** Cell types beyond the 8 colours above, then unclassified (grey). */
const TYPE_COLOURS = [...COLOURS.slice(0, 7), '#8B4513', '#FF69B4', '#2F4F4F', '#9ACD32', '#4B0082'];
const UNCLASSIFIED_COLOUR = '#999999';
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

const requestedThreads = Number(params.get('threads') ?? 0);
const maxThreads = Math.min(4, navigator.hardwareConcurrency || 1);
const threads = self.crossOriginIsolated ? requestedThreads || maxThreads : 1;
// A dynamic import keeps onnxruntime-web in a chunk of its own: its thread workers load the
// script that holds it (import.meta.url), which must not be this page script (it touches the DOM).
const ort = await import('onnxruntime-web/wasm');
ort.env.wasm.numThreads = threads;
ort.env.wasm.wasmPaths = { wasm: new URL(ortWasmUrl, location.href).href };

interface State {
  meta?: BmcMetadata;
  run?: NetworkRunner;
  image?: RawPixels;
  imageName?: string;
  bitmap?: ImageBitmap;
  result?: DetectResult;
  /** Score threshold the stored result was computed with. */
  resultThreshold?: number;
  threshold: number;
  detectMs?: number;
  /** The cell-type classifier, when the service has one (`bmc serve --classifier`) or `?classifier=` names one. */
  classifier?: { url: string; meta: ClassifierMeta; run: ClassifierRunner; threshold: number };
  /** Why the classifier the page was given is not used; stays in the status line so detection-only is never silent. */
  classifierProblem?: string;
  /** Type call of each detection of `result` (classified once per detection run). */
  calls?: Map<Detection, CellCall>;
  classifyMs?: number;
}
const state: State = { threshold: Number(($('threshold') as HTMLInputElement).value) };

/** Test and scripting hook: results and timings of the last run. */
const api = {
  threads,
  crossOriginIsolated: self.crossOriginIsolated,
  ready: undefined as unknown as Promise<void>,
  result: () => state.result,
  json: () => currentJson(),
  detectMs: () => state.detectMs,
  /** With a classifier: the differential count of the cells shown. */
  differential: () => currentDifferential(),
  classifyMs: () => state.classifyMs,
  /** Runs detection on already loaded pixels again (for timing). */
  rerun: async () => {
    await detect();
    return state.detectMs;
  },
};
(window as unknown as { bmcViewer: typeof api }).bmcViewer = api;

function status(text: string, error = false) {
  const el = $('status');
  const problem = state.classifierProblem;
  el.textContent = problem ? `${text} ${problem}` : text;
  el.classList.toggle('error', error || problem !== undefined);
}

async function loadModel(bytes: Uint8Array, source: string) {
  const meta = readBmcMetadata(bytes, source);
  const session = await ort.InferenceSession.create(bytes, {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
  });
  checkGraphNames(source, meta, session.inputNames, session.outputNames);
  state.meta = meta;
  state.run = ortRunner(session, meta, ort.Tensor);
  // The slider starts at the model's operating point (best F1 on validation), or at the
  // candidate threshold for a model exported without one.
  const counting = countingThreshold(meta);
  state.threshold = counting.scoreThreshold;
  const slider = $('threshold') as HTMLInputElement;
  slider.min = String(Math.min(Number(slider.min), meta.nms.scoreThreshold));
  slider.value = String(counting.scoreThreshold);
  $('threshold-value').textContent = counting.scoreThreshold.toFixed(3);
  slider.title = `starts at ${describeCountingThreshold(counting, 'the slider')}`;
  const name = typeof meta.model?.name === 'string' ? meta.model.name : source;
  status(
    `Model ${name} (${meta.classNames.length} class${meta.classNames.length > 1 ? 'es' : ''}, score ${meta.scoreMode}) ready; ` +
      `WASM ${threads} thread${threads > 1 ? 's' : ''}${self.crossOriginIsolated ? '' : ' (page not cross-origin isolated)'}; ` +
      `${applyPixelScale(meta).description}.`,
  );
}

async function initModel() {
  const url = params.get('model') ?? './v1/model.onnx';
  try {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    await loadModel(new Uint8Array(await res.arrayBuffer()), url);
  } catch (e) {
    // Static build without a service: the user picks the model file.
    $('model-pick').hidden = false;
    status(`No model at ${url} (${(e as Error).message}): pick a bmc .onnx file.`);
  }
}

async function initClassifier() {
  const url = params.get('classifier') ?? './v1/classifier.onnx';
  let bytes: Uint8Array;
  try {
    const res = await fetch(url);
    if (!res.ok) return; // no classifier: detection only
    bytes = new Uint8Array(await res.arrayBuffer());
  } catch {
    return;
  }
  try {
    const meta = readClassifierMeta(bytes, url);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    const run: ClassifierRunner = async (nchw, n, S) => {
      const out = await session.run({
        [session.inputNames[0]!]: new ort.Tensor('float32', nchw, [n, 3, S, S]),
      });
      return out[session.outputNames[0]!]!.data as Float32Array;
    };
    // The service's threshold (bmc serve --classifier-threshold), else ?classifierThreshold=, else 0.5.
    const served = await fetch('./v1/model')
      .then((r) => (r.ok ? r.json() : undefined))
      .catch(() => undefined);
    const threshold = Number(params.get('classifierThreshold') ?? served?.classifier?.threshold ?? 0.5);
    state.classifier = { url, meta, run, threshold };
    $('differential-section').hidden = false;
  } catch (e) {
    // e.g. an op onnxruntime-web's WASM backend lacks, or an ONNX file without bmc_classifier metadata.
    state.classifierProblem = `${url}: not a usable cell classifier (${(e as Error).message}); cell types are off.`;
    status($('status').textContent ?? '');
  }
}

async function readPixels(file: Blob): Promise<{ pixels: RawPixels; bitmap: ImageBitmap }> {
  // No colour management or premultiplication: the bytes must match what libvips decodes in Node.
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  return { pixels: { data, width: bitmap.width, height: bitmap.height, channels: 4 }, bitmap };
}

async function detect() {
  if (!state.run || !state.meta || !state.image) return;
  status('Detecting…');
  const t0 = performance.now();
  state.result = await detectPixels(state.run, state.meta, state.image, { scoreThreshold: state.threshold });
  state.detectMs = performance.now() - t0;
  state.resultThreshold = state.threshold;
  const c = state.classifier;
  if (c) {
    // Every detection of this run gets its type once; the slider then only filters.
    const t1 = performance.now();
    const dets = state.result.detections;
    try {
      const calls = await classifyBoxes(
        c.run,
        c.meta,
        state.image,
        dets.map((d) => d.box),
        c.threshold,
      );
      state.calls = new Map(dets.map((d, i) => [d, calls[i]!]));
      state.classifyMs = performance.now() - t1;
    } catch (e) {
      // A session that loaded but fails to run (an op's kernel missing at run time): show the
      // detections untyped and say why, rather than lose the image.
      state.classifier = undefined;
      state.calls = undefined;
      state.classifyMs = undefined;
      state.classifierProblem = `${c.url}: onnxruntime-web could not run the cell classifier (${(e as Error).message}); cell types are off.`;
      $('differential-section').hidden = true;
    }
  }
  const t = state.result.timings;
  status(
    `${state.result.detections.length} cells in ${state.detectMs.toFixed(0)} ms ` +
      `(preprocess ${t.preprocessMs.toFixed(0)}, network ${t.networkMs.toFixed(0)}, post-process ${t.postprocessMs.toFixed(0)} ms; ` +
      `WASM ${threads} thread${threads > 1 ? 's' : ''})` +
      (state.classifyMs !== undefined ? `; cell types in ${state.classifyMs.toFixed(0)} ms.` : '.'),
  );
  render();
}

function visible() {
  return (state.result?.detections ?? []).filter((d) => d.score >= state.threshold);
}

/** A shown detection's type name and probability (undefined without a classifier). */
function cellType(d: Detection): { name: string; index: number; probability: number } | undefined {
  const call = state.calls?.get(d);
  if (!call || !state.classifier) return undefined;
  const name = call.type >= 0 ? state.classifier.meta.classNames[call.type]! : UNCLASSIFIED;
  return { name, index: call.type, probability: call.probability };
}

function currentDifferential(): DifferentialCount | undefined {
  const c = state.classifier;
  if (!c || !state.calls) return undefined;
  const calls = visible().flatMap((d) => {
    const call = state.calls!.get(d);
    return call ? [call] : [];
  });
  return cellDifferential(calls, c.meta.classNames, c.threshold);
}

function currentJson(): (DetectionJson & { differential?: DifferentialCount }) | undefined {
  if (!state.result || !state.meta) return undefined;
  const dets = visible();
  const json = toDetectionJson({ ...state.result, detections: dets }, state.meta, state.imageName);
  const differential = currentDifferential();
  if (!differential) return json;
  // The same fields as the service's answer (bmc serve --classifier).
  return {
    ...json,
    detections: json.detections.map((d, i) => {
      const t = cellType(dets[i]!)!;
      return { ...d, cellType: t.name, cellTypeProbability: t.probability };
    }),
    differential,
  };
}

const typeColour = (index: number) =>
  index >= 0 ? TYPE_COLOURS[index % TYPE_COLOURS.length]! : UNCLASSIFIED_COLOUR;

function render() {
  const canvas = $('canvas') as HTMLCanvasElement;
  const ctx = canvas.getContext('2d')!;
  if (!state.bitmap || !state.meta) return;
  canvas.width = state.bitmap.width;
  canvas.height = state.bitmap.height;
  ctx.drawImage(state.bitmap, 0, 0);
  const dets = visible();
  const lw = Math.max(1, Math.round(Math.max(canvas.width, canvas.height) / 400));
  const font = Math.max(10, Math.round(Math.max(canvas.width, canvas.height) / 60));
  ctx.lineWidth = lw;
  ctx.font = `${font}px sans-serif`;
  dets.forEach((d, i) => {
    const [x1, y1, x2, y2] = d.box;
    const type = cellType(d);
    // With a classifier, boxes take their cell type's colour (unclassified: grey).
    const c = type ? typeColour(type.index) : COLOURS[d.classId % COLOURS.length]!;
    ctx.strokeStyle = c;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = type
      ? `${i + 1} ${type.name} ${type.probability.toFixed(2)}`
      : `${i + 1} ${d.score.toFixed(2)}`;
    const ty = y1 > font + 2 ? y1 - 3 : y2 + font;
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'white';
    ctx.strokeText(label, x1, ty);
    ctx.fillStyle = c;
    ctx.fillText(label, x1, ty);
    ctx.lineWidth = lw;
  });
  const json = currentJson()!;
  const counts = $('counts');
  counts.replaceChildren(
    ...Object.entries(json.counts).map(([name, n]) => {
      const tr = document.createElement('tr');
      const k = state.meta!.classNames.indexOf(name);
      tr.innerHTML = `<td><span class="swatch" style="background:${COLOURS[k % COLOURS.length]}"></span></td><td></td><td></td>`;
      tr.children[1]!.textContent = name;
      tr.children[2]!.textContent = String(n);
      return tr;
    }),
    Object.assign(document.createElement('tr'), {
      innerHTML: `<td></td><td><b>total</b></td><td><b>${json.count}</b></td>`,
    }),
  );
  const differential = currentDifferential();
  if (differential) {
    $('differential').replaceChildren(
      ...differential.rows.map((r, k) => {
        const tr = document.createElement('tr');
        const colour = typeColour(
          r.type === UNCLASSIFIED ? -1 : state.classifier!.meta.classNames.indexOf(r.type),
        );
        tr.innerHTML = `<td><span class="swatch" style="background:${colour}"></span></td><td></td><td></td><td></td>`;
        tr.children[1]!.textContent = r.type;
        tr.children[2]!.textContent = String(r.count);
        tr.children[3]!.textContent = `${r.percent.toFixed(1)}%`;
        tr.dataset.row = String(k);
        return tr;
      }),
      Object.assign(document.createElement('tr'), {
        innerHTML: `<td></td><td><b>nucleated</b></td><td><b>${differential.total}</b></td><td><b>100%</b></td>`,
      }),
    );
    $('differential-note').textContent =
      `below probability ${differential.threshold} a cell is counted as unclassified`;
  }
  $('cells').replaceChildren(
    ...dets.map((d) => {
      const li = document.createElement('li');
      const type = cellType(d);
      li.textContent =
        `${d.className} ${d.score.toFixed(3)} [${d.box.map((v) => v.toFixed(0)).join(', ')}]` +
        (type ? ` ${type.name} ${type.probability.toFixed(2)}` : '');
      return li;
    }),
  );
  ($('download') as HTMLButtonElement).disabled = false;
  $('drop-hint').hidden = true;
}

async function openImage(file: File) {
  try {
    const { pixels, bitmap } = await readPixels(file);
    state.image = pixels;
    state.bitmap = bitmap;
    state.imageName = file.name;
    await detect();
  } catch (e) {
    status(`${file.name}: cannot read this image (${(e as Error).message})`, true);
  }
}

$('image-file').addEventListener('change', (ev) => {
  const f = (ev.target as HTMLInputElement).files?.[0];
  if (f) void openImage(f);
});
$('model-file').addEventListener('change', async (ev) => {
  const f = (ev.target as HTMLInputElement).files?.[0];
  if (!f) return;
  try {
    await loadModel(new Uint8Array(await f.arrayBuffer()), f.name);
    $('model-pick').hidden = true;
    await detect();
  } catch (e) {
    status(`${f.name}: ${(e as Error).message}`, true);
  }
});
const drop = $('drop');
drop.addEventListener('dragover', (ev) => {
  ev.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const f = ev.dataTransfer?.files?.[0];
  if (f) void openImage(f);
});
$('threshold').addEventListener('input', (ev) => {
  state.threshold = Number((ev.target as HTMLInputElement).value);
  $('threshold-value').textContent = state.threshold.toFixed(3);
  // Raising the threshold only filters (greedy NMS keeps are decided by higher scores);
  // lowering it below the last run's needs a new run to recover suppressed candidates.
  if (state.resultThreshold !== undefined && state.threshold < state.resultThreshold) void detect();
  else render();
});
$('download').addEventListener('click', () => {
  const json = currentJson();
  if (!json) return;
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([JSON.stringify(json, null, 1)], { type: 'application/json' }));
  a.download = `${(state.imageName ?? 'image').replace(/\.[^.]+$/, '')}.detections.json`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});

api.ready = Promise.all([initModel(), initClassifier()]).then(() => {});
