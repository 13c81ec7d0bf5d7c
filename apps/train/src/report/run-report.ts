import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@bmc/core/node';
import { toBytes } from '@bmc/data';
import type { OperatingPoint } from '@bmc/export';
import { prCurves, prCurvesSvg, reportToJson, reportToMarkdown } from '@bmc/metrics';
import type { LayersModel } from '@tensorflow/tfjs';
import { marked } from 'marked';
import type { TrainConfig } from '../config/schema.js';
import { readJsonl } from '../run/jsonl-log.js';
import type { RunPaths } from '../run/run-dir.js';
import type { Split } from '../train/data.js';
import type { Evaluation } from '../train/evaluate.js';
import { describeOperatingPoint } from '../train/operating-point.js';
import { type ClassifierReportInput, classifierSection } from './classifier-section.js';
import { drawBoxesPng } from './draw-boxes.js';
import { measureModelCost, modelCostMarkdown } from './model-cost.js';
import { lineChartSvg, smooth } from './svg-lines.js';

export interface RunReportInput {
  paths: RunPaths;
  config: TrainConfig;
  /** Evaluation on the held-out split. */
  test: Evaluation;
  testSplit: Split;
  backend: string;
  peakRssMb: number;
  trainSeconds?: number;
  /** The counting threshold of the reported weights (chosen on validation), when they have one. */
  operatingPoint?: OperatingPoint;
  extraLines?: string[];
  /** How many test images to draw. */
  samples?: number;
  /** The evaluated network: the report then counts its parameters and GFLOPs and times it (FPS). */
  model?: LayersModel;
  /** A cell-type classifier trained with the run (the demo): its section with the confusion matrix. */
  classifier?: ClassifierReportInput;
}

/** Steps as logged; after a resume a step can appear twice, and the last record wins. */
function stepRecords(paths: RunPaths) {
  const byStep = new Map<number, Record<string, number>>();
  const evals: Array<Record<string, number>> = [];
  let best: { step: number; AP: number } | undefined;
  // What the data reading and loading changed (see train/data-checks.ts), said again in the report.
  const data = new Map<string, string>();
  for (const e of readJsonl(readFileSync(paths.log, 'utf8'))) {
    if (e.event === 'data-split') data.set('split', `data split: ${e.description}`);
    if (e.event === 'data-problems')
      data.set(
        `problems ${e.split}`,
        `data problems (${e.split}): ${e.droppedBoxes} box(es) dropped, ${e.clippedBoxes} clipped, ${e.droppedImages} image(s) dropped while reading`,
      );
    if (e.event === 'bad-image')
      data.set(
        'bad-image',
        `training images skipped (failed to decode): ${e.failed}, the latest ${e.file ?? e.problem}`,
      );
    if (e.event === 'step') byStep.set(e.step as number, e as unknown as Record<string, number>);
    if (e.event === 'eval') evals.push(e as unknown as Record<string, number>);
    if (e.event === 'best') best = e as unknown as { step: number; AP: number };
  }
  return {
    steps: [...byStep.values()].sort((a, b) => a.step! - b.step!),
    evals,
    best,
    dataLines: [...data.values()],
  };
}

/**
 * The run report: Markdown + HTML in the published tables' layouts (Table 1.2's
 * best-F1 sweep; Table 1.3's AP50/75/90, FPS, parameters and GFLOPs when the
 * model is given), per-class AP, PR curves, loss curves and test images with
 * ground truth (green) and detections (red), plus metrics.json.
 */
export async function writeRunReport(r: RunReportInput): Promise<string> {
  const dir = r.paths.report;
  const { steps, evals, best, dataLines } = stepRecords(r.paths);
  const k = Math.max(1, Math.round(steps.length / 50));
  const x = steps.map((s) => s.step!);
  const lossSvg = lineChartSvg(
    (['loss', 'cls', 'box', 'iou'] as const).map((key) => ({
      label: key,
      x,
      y: smooth(
        steps.map((s) => s[key]!),
        k,
      ),
    })),
    { title: `training loss (moving average of ${k} steps)`, xLabel: 'step', yLabel: 'loss' },
  );
  writeFileAtomic(join(dir, 'loss.svg'), lossSvg);
  const curves = prCurves(r.test.result, [0.5, 0.75, 0.9]);
  writeFileAtomic(
    join(dir, 'pr-curves.svg'),
    prCurvesSvg(curves, { title: `${r.config.name}: PR curves (test)` }),
  );
  writeFileAtomic(join(dir, 'metrics.json'), reportToJson(r.test.report));
  const side = r.config.data.imageSize;
  const cost = r.model ? await measureModelCost(r.model, [side, side]) : undefined;
  if (cost) writeFileAtomic(join(dir, 'model-cost.json'), `${JSON.stringify(cost, null, 2)}\n`);

  // Test images show what a user's counts contain: detections at the counting threshold.
  const drawAt = r.operatingPoint?.scoreThreshold ?? 0.3;
  const sampleLines: string[] = [];
  const n = Math.min(r.samples ?? 4, r.testSplit.source.length);
  for (let i = 0; i < n; i++) {
    const size = r.testSplit.source.size(i);
    const s = await r.testSplit.source.load(i, size.width, size.height);
    const dets = r.test.predictions.perImage.get(i);
    const boxes = [
      ...Array.from({ length: s.boxes.length / 4 }, (_, k) => ({
        box: s.boxes.subarray(4 * k, 4 * k + 4),
        color: '#00c000',
      })),
      ...(dets
        ? Array.from({ length: dets.scores.length }, (_, k) => ({
            box: dets.boxes.subarray(4 * k, 4 * k + 4),
            color: '#ff2020',
            label: dets.scores[k]!.toFixed(2),
          })).filter((_, k) => dets.scores[k]! >= drawAt)
        : []),
    ];
    const png = await drawBoxesPng(toBytes(s.image), s.image.width, s.image.height, boxes);
    writeFileAtomic(join(dir, `sample-${i}.png`), png);
    sampleLines.push(`![test image ${i}](sample-${i}.png)`);
  }

  const last = steps[steps.length - 1];
  const md = [
    `# ${r.config.name}: training report`,
    '',
    `- preset: ${r.config.preset ?? '(none)'}; model: ResNet${r.config.model.backbone.depth} x${r.config.model.backbone.widthMultiplier}, ` +
      `${r.config.model.neck.type} on levels ${r.config.model.neck.levels.join(',')}, IoU branch ${r.config.model.head.iouBranch ? 'on' : 'off'}, ` +
      `assigner ${r.config.assigner.type}, score ${r.config.model.head.iouBranch ? r.config.inference.scoreMode : 'cls'}`,
    `- data: ${r.config.data.format}${r.config.data.path ? ` (${r.config.data.path})` : ''}, input ${r.config.data.imageSize}x${r.config.data.imageSize}, test images ${r.test.report.numImages}, test boxes ${r.test.report.numGt}`,
    `- steps: ${last?.step ?? 0}, backend: ${r.backend}${r.trainSeconds ? `, training time ${(r.trainSeconds / 60).toFixed(1)} min` : ''}, peak RSS ${r.peakRssMb.toFixed(0)} MB`,
    `- inference (network + post-processing, tfjs): ${r.test.predictions.msPerImage.toFixed(1)} ms/image`,
    `- thresholds: AP and COCO results keep every candidate above ${r.config.inference.scoreThreshold}; counts (bmc detect, the service, the viewer) ` +
      (r.operatingPoint
        ? `${describeOperatingPoint(r.operatingPoint)}, the best F1 at IoU ${r.operatingPoint.iou} on ${r.operatingPoint.split} at step ${r.operatingPoint.step}`
        : 'use the candidate threshold too (these weights have no operating point: not validated)'),
    ...(best
      ? [
          `- best/ (the default weights of eval and export) holds step ${best.step}, validation AP ${best.AP.toFixed(4)}`,
        ]
      : []),
    ...dataLines.map((l) => `- ${l}`),
    ...(r.extraLines ?? []).map((l) => `- ${l}`),
    '',
    reportToMarkdown(r.test.report),
    '',
    ...(cost
      ? [
          modelCostMarkdown(
            r.config.name,
            {
              AP50: r.test.result.stats[1] ?? null,
              AP75: r.test.result.stats[2] ?? null,
              AP90: r.test.report.apAt.AP90 ?? null,
            },
            cost,
          ),
          '',
        ]
      : []),
    '## Validation during training',
    '',
    '| step | AP | AP50 | AP75 | count threshold (F1 at IoU 0.5) |',
    '|---|---|---|---|---|',
    ...evals.map((e) => {
      const op = (e as unknown as { operatingPoint?: OperatingPoint }).operatingPoint;
      const count = op ? `${op.scoreThreshold.toFixed(3)} (${op.f1.toFixed(3)})` : '-';
      return `| ${e.step} | ${e.AP!.toFixed(4)} | ${e.AP50!.toFixed(4)} | ${e.AP75!.toFixed(4)} | ${count} |`;
    }),
    '',
    '## Curves',
    '',
    '![loss](loss.svg) ![PR curves](pr-curves.svg)',
    '',
    `## Test images (green: ground truth, red: detections with score >= ${drawAt.toFixed(3)}${r.operatingPoint ? ', the counting threshold' : ''})`,
    '',
    sampleLines.join(' '),
    '',
    ...(r.classifier ? classifierSection(dir, r.classifier) : []),
  ].join('\n');
  writeFileAtomic(join(dir, 'report.md'), md);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${r.config.name} report</title>
<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}img{max-width:48%;margin:4px}</style>
</head><body>${await marked.parse(md)}</body></html>\n`;
  writeFileAtomic(join(dir, 'report.html'), html);
  return join(dir, 'report.md');
}
