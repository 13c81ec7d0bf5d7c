import { type BestF1Row, bestF1Sweep } from './best-f1.js';
import type { CocoEvalResult } from './coco-eval.js';
import { apAtIous, type ClassAp, perClassAp } from './per-class.js';
import { STAT_NAMES, type StatName } from './summarize.js';

/** Everything the thesis tables need, as plain JSON (no typed arrays), for app reports and CI logs. */
export interface EvaluationReport {
  title: string;
  classAgnostic: boolean;
  numImages: number;
  /** Non-crowd ground truths (area 'all'). */
  numGt: number;
  /** Detections evaluated (each image's top maxDets[-1] per category). */
  numDetections: number;
  /** pycocotools' 12 summary numbers; null where pycocotools prints -1. */
  stats: Record<StatName, number | null>;
  /** Table 1.3: AP at IoU 0.5 / 0.75 / 0.9 (keys `AP50`, `AP75`, `AP90`). */
  apAt: Record<string, number | null>;
  /** Table 1.2: best-F1 operating point and AP at each IoU threshold. */
  bestF1: BestF1Row[];
  perClass: ClassAp[];
}

export interface ReportOptions {
  title?: string;
  /** IoUs for the AP-at-IoU table; default [0.5, 0.75, 0.9]. */
  apIous?: readonly number[];
}

export function buildReport(result: CocoEvalResult, options: ReportOptions = {}): EvaluationReport {
  const stats = {} as Record<StatName, number | null>;
  STAT_NAMES.forEach((n, i) => {
    const v = result.stats[i]!;
    stats[n] = v === -1 ? null : v;
  });
  const cats = result.evaluation.categories;
  return {
    title: options.title ?? 'COCO bbox evaluation',
    classAgnostic: !result.params.useCats,
    numImages: result.imgIds.length,
    numGt: cats.reduce((s, c) => s + c.numGt[0]!, 0),
    numDetections: cats.reduce((s, c) => s + c.count, 0),
    stats,
    apAt: apAtIous(result, options.apIous ?? [0.5, 0.75, 0.9]),
    bestF1: bestF1Sweep(result),
    perClass: perClassAp(result),
  };
}

/** Report as pretty JSON text (stable key order, trailing newline). */
export function reportToJson(report: EvaluationReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

function fmt(v: number | null | undefined, digits: number): string {
  return v === null || v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits);
}

function table(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Report as GitHub-flavoured Markdown: summary, Table 1.2, Table 1.3 and per-class AP. */
export function reportToMarkdown(report: EvaluationReport, digits = 4): string {
  const parts: string[] = [];
  parts.push(`## ${mdCell(report.title)}`);
  parts.push(
    `${report.numImages} images, ${report.numGt} ground truths, ${report.numDetections} detections` +
      (report.classAgnostic ? ' (class-agnostic)' : ''),
  );
  parts.push('### COCO summary');
  parts.push(table([...STAT_NAMES], [STAT_NAMES.map((n) => fmt(report.stats[n], digits))]));
  parts.push('### Best-F1 operating point per IoU threshold');
  parts.push(
    table(
      ['IoU', 'Precision', 'Recall', 'F1', 'Score threshold', 'TP', 'FP', 'FN', 'AP'],
      report.bestF1.map((r) => [
        r.iouThr.toFixed(2),
        fmt(r.precision, digits),
        fmt(r.recall, digits),
        fmt(r.f1, digits),
        fmt(r.scoreThreshold, digits),
        String(r.tp),
        String(r.fp),
        String(r.fn),
        fmt(r.ap, digits),
      ]),
    ),
  );
  parts.push('### AP at IoU');
  const keys = Object.keys(report.apAt);
  parts.push(table(keys, [keys.map((k) => fmt(report.apAt[k], digits))]));
  parts.push('### Per-class AP');
  parts.push(
    table(
      ['Class', 'GT', 'AP', 'AP50', 'AP75', 'AR100'],
      report.perClass.map((c) => [
        mdCell(c.name),
        String(c.numGt),
        fmt(c.ap, digits),
        fmt(c.ap50, digits),
        fmt(c.ap75, digits),
        fmt(c.ar, digits),
      ]),
    ),
  );
  return `${parts.join('\n\n')}\n`;
}
