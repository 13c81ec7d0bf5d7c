import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { measureModelFps, modelStats } from '@bmc/metrics/model-stats';
import * as tf from '@tensorflow/tfjs';

/** Size and speed of a network, as the thesis's Table 1.3 reports them, with where the speed was measured. */
export interface ModelCost {
  /** Parameters that train (mmcv's convention, the published tables' "Params"). */
  trainableParams: number;
  /** Every weight, frozen ones and BatchNorm statistics included. */
  params: number;
  /** mmcv-convention GFLOPs (as @bmc/metrics counts) of one image at `inputSize`. */
  gflops: number;
  inputSize: [number, number];
  /** Images per second of the network alone (batch 1, median of `runs` timed runs), on `backend`. */
  fps: number;
  runs: number;
  backend: string;
  /** The machine's CPU model and its SIMD features (from /proc/cpuinfo where readable). */
  cpu: string;
  cpuFeatures: string[];
}

const SIMD = ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni', 'neon', 'asimd'];

/** CPU model and the SIMD features that decide tfjs-wasm / onnxruntime speed. */
export function machineCpu(cpuinfo?: string): { cpu: string; cpuFeatures: string[] } {
  let text = cpuinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      text = '';
    }
  }
  const flags = new Set((/^(?:flags|Features)\s*:\s*(.*)$/m.exec(text)?.[1] ?? '').split(/\s+/));
  return { cpu: cpus()[0]?.model?.trim() || 'unknown CPU', cpuFeatures: SIMD.filter((f) => flags.has(f)) };
}

/** Counts the network's parameters and GFLOPs at `inputSize` and times it on the active backend. */
export async function measureModelCost(
  model: tf.LayersModel,
  inputSize: [number, number],
  options: { runs?: number; warmup?: number } = {},
): Promise<ModelCost> {
  const shape = [inputSize[0], inputSize[1], 3];
  const stats = modelStats(model, { inputShape: shape });
  const runs = options.runs ?? 5;
  const timing = await measureModelFps(tf, model, shape, { runs, warmup: options.warmup ?? 1 });
  return {
    trainableParams: stats.trainableParams,
    params: stats.params,
    gflops: stats.gflops,
    inputSize,
    fps: timing.fps,
    runs,
    backend: tf.getBackend(),
    ...machineCpu(),
  };
}

/** The published figures the report puts beside a run's (DESIGN.md: private 11-class set, RTX3090). */
const PUBLISHED = [
  {
    model: 'published: thesis model',
    AP50: 0.9864,
    AP75: 0.9668,
    AP90: 0.6305,
    fps: '27.2',
    params: 37.89,
    gflops: 140.94,
  },
  {
    model: 'published: baseline RetinaNet',
    AP50: 0.9801,
    AP75: 0.9542,
    AP90: 0.5215,
    fps: '-',
    params: 36.31,
    gflops: 135.73,
  },
];

/**
 * The Table 1.3 layout (model, AP50 / AP75 / AP90, FPS, Params, GFLOPs): this run's row, the published
 * rows for reference, and the line saying where the FPS was measured.
 */
export function modelCostMarkdown(
  name: string,
  ap: { AP50: number | null; AP75: number | null; AP90: number | null },
  c: ModelCost,
): string {
  const f = (x: number | null) => (x === null ? '-' : x.toFixed(4));
  return [
    '### Accuracy, speed and size (the published Table 1.3 layout)',
    '',
    '| model | AP50 | AP75 | AP90 | FPS | Params (M) | GFLOPs |',
    '|---|---|---|---|---|---|---|',
    `| ${name} (this run) | ${f(ap.AP50)} | ${f(ap.AP75)} | ${f(ap.AP90)} | ${c.fps.toFixed(1)} | ${(c.trainableParams / 1e6).toFixed(2)} | ${c.gflops.toFixed(2)} |`,
    ...PUBLISHED.map(
      (p) =>
        `| ${p.model} | ${p.AP50.toFixed(4)} | ${p.AP75.toFixed(4)} | ${p.AP90.toFixed(4)} | ${p.fps} | ${p.params.toFixed(2)} | ${p.gflops.toFixed(2)} |`,
    ),
    '',
    `FPS: the network alone (batch 1, no post-processing), median of ${c.runs} runs at ${c.inputSize[0]}x${c.inputSize[1]} on the ${c.backend} backend, ` +
      `${c.cpu}${c.cpuFeatures.length ? ` (${c.cpuFeatures.join(', ')})` : ''}. Params: weights that train (mmcv's convention; ` +
      `${(c.params / 1e6).toFixed(2)} M with frozen weights and statistics). GFLOPs: mmcv's convention at ${c.inputSize[0]}x${c.inputSize[1]}, ` +
      "counted by @bmc/metrics. The published rows are the thesis's (private 11-class bone marrow set, RTX3090 GPU; " +
      'its 135.73 GFLOPs are the baseline at 800x832): compare the layout, not the figures.',
  ].join('\n');
}
