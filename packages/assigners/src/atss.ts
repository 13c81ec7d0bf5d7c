import { boxIou, gatherRows } from '@bmc/core';
import { anchorIndex, nearestK } from './anchor-index.js';
import { checkInput } from './input.js';
import { allBackground, ensureOnePositive, makeResult } from './result.js';
import { type Assigner, type AssignInput, type AssignResult, BACKGROUND } from './types.js';

export interface AtssOptions {
  /** Candidates per level: the anchors whose centres are nearest the ground-truth centre (default 9). */
  topK?: number;
  /** An anchor centre counts as inside a box when all four distances to its sides exceed this (default 0.01 px, as the official code). */
  insideEps?: number;
  /**
   * Give a ground truth that ends with no positive its best candidate (highest
   * IoU among its candidates whose centre lies inside it) — see
   * {@link ensureOnePositive}. Default true; false is the paper exactly.
   */
  ensureOnePositive?: boolean;
}

/**
 * Adaptive Training Sample Selection (Zhang et al., CVPR 2020). For each
 * ground truth: the `topK` anchors per level nearest its centre (L2 between
 * centres) are candidates; the IoU threshold is mean + standard deviation of
 * the candidates' IoUs; a candidate is positive when its IoU reaches the
 * threshold and its centre lies inside the box. An anchor positive for
 * several ground truths goes to the one with the highest IoU (lower index on
 * ties). Everything else is background; ATSS ignores nothing.
 *
 * Choices the paper leaves open, following the official code (sfzhang15/ATSS):
 * the standard deviation is the unbiased one (torch's `std`), except that a
 * single candidate gets std 0 (torch would give NaN and no positive); the
 * threshold test is `>=`; "inside" is strict with a 0.01 px margin, so a
 * zero-area ground truth never gets a positive.
 */
export class AtssAssigner implements Assigner {
  readonly name = 'atss' as const;
  readonly needsPredictions = false;
  readonly options: Required<AtssOptions>;

  constructor(options: AtssOptions = {}) {
    this.options = {
      topK: options.topK ?? 9,
      insideEps: options.insideEps ?? 0.01,
      ensureOnePositive: options.ensureOnePositive ?? true,
    };
  }

  assign(input: AssignInput): AssignResult {
    const { n, g, levelStarts } = checkInput('ATSS', input, false);
    if (g === 0) return allBackground(n, 'anchor');
    const { topK, insideEps } = this.options;
    const a = input.anchors;
    const b = input.gtBoxes;
    const index = anchorIndex(a, levelStarts);
    const acx = index.cx;
    const acy = index.cy;
    const gtIndex = new Int32Array(n).fill(BACKGROUND);
    const iou = new Float32Array(n);
    const ranked: Int32Array[] = [];
    const perGt: Array<{ cand: Int32Array; ious: Float32Array }> = [];
    for (let j = 0; j < g; j++) {
      const x1 = b[4 * j]!;
      const y1 = b[4 * j + 1]!;
      const x2 = b[4 * j + 2]!;
      const y2 = b[4 * j + 3]!;
      const gcx = (x1 + x2) / 2;
      const gcy = (y1 + y2) / 2;
      const parts: Int32Array[] = [];
      for (let l = 0; l + 1 < levelStarts.length; l++) parts.push(nearestK(index, l, gcx, gcy, topK));
      const cand = concat(parts);
      const ious = boxIou(gatherRows(a, cand), [x1, y1, x2, y2]).data;
      const thr = meanPlusStd(ious);
      const inside: number[] = [];
      for (let r = 0; r < cand.length; r++) {
        const i = cand[r]!;
        const isIn = Math.min(acx[i]! - x1, acy[i]! - y1, x2 - acx[i]!, y2 - acy[i]!) > insideEps;
        if (!isIn) continue;
        inside.push(r);
        const v = ious[r]!;
        // Strictly greater: on equal IoU the lower ground-truth index keeps the anchor.
        if (v >= thr && (gtIndex[i]! < 0 || v > iou[i]!)) {
          gtIndex[i] = j;
          iou[i] = v;
        }
      }
      const rescue = inside.filter((r) => ious[r]! > 0).sort((p, q) => ious[q]! - ious[p]! || p - q);
      ranked.push(Int32Array.from(rescue, (r) => cand[r]!));
      perGt.push({ cand, ious });
    }
    if (this.options.ensureOnePositive) {
      ensureOnePositive(
        gtIndex,
        g,
        (j) => ranked[j]!,
        (i, j) => {
          const { cand, ious } = perGt[j]!;
          iou[i] = ious[cand.indexOf(i)]!;
        },
      );
    }
    return makeResult(gtIndex, iou, input.gtLabels, g, 'anchor');
  }
}

function concat(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Mean plus unbiased standard deviation; std 0 for a single value. */
export function meanPlusStd(values: ArrayLike<number>): number {
  const k = values.length;
  if (k === 0) return Number.POSITIVE_INFINITY;
  let mean = 0;
  for (let r = 0; r < k; r++) mean += values[r]!;
  mean /= k;
  if (k === 1) return mean;
  let ss = 0;
  for (let r = 0; r < k; r++) ss += (values[r]! - mean) ** 2;
  return mean + Math.sqrt(ss / (k - 1));
}
