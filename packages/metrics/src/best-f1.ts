import type { CocoEvalResult } from './coco-eval.js';
import { FP, TP } from './evaluate-images.js';

/** One row of the per-IoU table (thesis Table 1.2): the operating point that maximises F1. */
export interface BestF1Row {
  iouThr: number;
  precision: number;
  recall: number;
  f1: number;
  /** Keep detections with `score >= scoreThreshold`; null when there is no detection to keep. */
  scoreThreshold: number | null;
  tp: number;
  fp: number;
  /** Ground truths missed at this threshold (non-crowd, inside the area range). */
  fn: number;
  /** COCO AP at this IoU alone (101-point, mean over categories with GT); null when no category has GT. */
  ap: number | null;
}

export interface BestF1Options {
  /** Area range label; default 'all'. */
  areaLabel?: string;
  /** Per-image detection cap, one of `params.maxDets`; default the largest. */
  maxDets?: number;
}

/**
 * For each IoU threshold: the score threshold that maximises F1 over all detections
 * (one threshold for all categories: counts are pooled, micro-averaged), with its
 * precision, recall and counts, plus COCO AP at that IoU.
 *
 * Detections are matched exactly as in the COCO evaluation (greedy by score, per image
 * and category); detections matched to crowd regions, or unmatched and outside the
 * area range, count as neither TP nor FP. A detection of a category without ground
 * truth counts as FP here (COCO AP skips such categories). Candidate thresholds are the
 * distinct scores: tied detections are kept or dropped together, so the result does not
 * depend on their order. Ties in F1 keep the higher threshold.
 */
export function bestF1Sweep(result: CocoEvalResult, options: BestF1Options = {}): BestF1Row[] {
  const p = result.params;
  const T = p.iouThrs.length;
  const A = p.areaRng.length;
  const a = p.areaRng.findIndex((x) => x.label === (options.areaLabel ?? 'all'));
  if (a < 0) throw new RangeError(`bestF1Sweep: no area range "${options.areaLabel}"`);
  const maxDet = options.maxDets ?? p.maxDets[p.maxDets.length - 1]!;
  const mIdx = p.maxDets.indexOf(maxDet);
  if (mIdx < 0) throw new RangeError(`bestF1Sweep: maxDets ${maxDet} is not one of ${p.maxDets.join(', ')}`);

  const cats = result.evaluation.categories;
  let total = 0;
  let numGt = 0;
  for (const c of cats) {
    numGt += c.numGt[a]!;
    for (let s = 0; s < c.count; s++) if (c.rank[s]! < maxDet) total++;
  }
  // Pool (category, slot) pairs and sort by score, highest first.
  const score = new Float64Array(total);
  const cat = new Int32Array(total);
  const slot = new Int32Array(total);
  let n = 0;
  cats.forEach((c, k) => {
    for (let s = 0; s < c.count; s++) {
      if (c.rank[s]! >= maxDet) continue;
      score[n] = c.score[s]!;
      cat[n] = k;
      slot[n] = s;
      n++;
    }
  });
  const order = new Int32Array(total);
  for (let j = 0; j < total; j++) order[j] = j;
  order.sort((x, y) => score[y]! - score[x]!);
  // Outcomes gathered in score order, one row per IoU, for sequential scans.
  const codes = new Uint8Array(T * total);
  const sorted = new Float64Array(total);
  for (let j = 0; j < total; j++) {
    const e = order[j]!;
    const c = cats[cat[e]!]!;
    const base = slot[e]! * A * T + a * T;
    for (let t = 0; t < T; t++) codes[t * total + j] = c.outcome[base + t]!;
    sorted[j] = score[e]!;
  }

  const rows: BestF1Row[] = [];
  for (let t = 0; t < T; t++) {
    let tp = 0;
    let fp = 0;
    const best = { f1: 0, tp: 0, fp: 0, thr: null as number | null };
    const row = codes.subarray(t * total, (t + 1) * total);
    for (let j = 0; j < total; j++) {
      const o = row[j];
      if (o === TP) tp++;
      else if (o === FP) fp++;
      // Only cut between different scores.
      if (j + 1 < total && sorted[j + 1] === sorted[j]) continue;
      if (tp === 0) continue;
      const prec = tp / (tp + fp);
      const rec = numGt > 0 ? tp / numGt : 0;
      const f1 = (2 * prec * rec) / (prec + rec);
      if (f1 > best.f1) {
        best.f1 = f1;
        best.tp = tp;
        best.fp = fp;
        best.thr = sorted[j]!;
      }
    }
    const precision = best.tp + best.fp > 0 ? best.tp / (best.tp + best.fp) : 0;
    const recall = numGt > 0 ? best.tp / numGt : 0;
    rows.push({
      iouThr: p.iouThrs[t]!,
      precision,
      recall,
      f1: best.f1,
      scoreThreshold: best.thr,
      tp: best.tp,
      fp: best.fp,
      fn: numGt - best.tp,
      ap: apAt(result, t, a, mIdx),
    });
  }
  return rows;
}

/** Mean precision over recall points and categories with GT at IoU index t; null when none. */
export function apAt(result: CocoEvalResult, t: number, a = 0, m = -1): number | null {
  const [, R, K, A, M] = result.counts;
  const mi = m < 0 ? M - 1 : m;
  let s = 0;
  let n = 0;
  for (let r = 0; r < R; r++) {
    for (let k = 0; k < K; k++) {
      const v = result.precision[(((t * R + r) * K + k) * A + a) * M + mi]!;
      if (v > -1) {
        s += v;
        n++;
      }
    }
  }
  return n ? s / n : null;
}
