import { alignedGiou, alignedIou, gatherRows } from '@bmc/core';
import { anchorIndex, centreWindow } from './anchor-index.js';
import { focalNegative, focalPositive } from './focal-cost.js';
import { checkInput, checkRowsFinite } from './input.js';
import { allBackground, ensureOnePositive, makeResult } from './result.js';
import { type SinkhornOptions, sinkhorn, type TransportProblem } from './sinkhorn.js';
import { inferLevelStrides } from './strides.js';
import { type Assigner, type AssignInput, type AssignResult, BACKGROUND } from './types.js';

export interface OtaOptions {
  /** Weight of the GIoU cost against the focal classification cost (default 1.5, the official config's REG_WEIGHT). */
  regWeight?: number;
  /** Half-size of the centre region in strides of the anchor's level (default 2.5, as the official code). */
  centreRadius?: number;
  /** Dynamic k: a ground truth supplies `max(1, floor(sum of its top-q IoUs))` units (default q = 20). */
  topQ?: number;
  /** Use this many units per ground truth instead of the dynamic k (ablation and tests). */
  fixedK?: number;
  /** Focal cost parameters (default 0.25 and 2). */
  alpha?: number;
  gamma?: number;
  /** Entropy eps (default 0.1) and fixed iteration count (default 50), as the official code. */
  sinkhorn?: SinkhornOptions;
  /**
   * Divide each supplier's row of the plan by its maximum before every anchor
   * picks the supplier that sent it the most (default true, as the official
   * code). Without it an object that spreads one unit thinly over several
   * anchors can lose all of them to the background.
   */
  rescale?: boolean;
  /** Give a ground truth that ends with no positive its best candidate by plan (default true). */
  ensureOnePositive?: boolean;
  /** Anchor centre inside a box: all four distances exceed this (default 0.01 px). */
  insideEps?: number;
}

/**
 * Optimal Transport Assignment (Ge et al., CVPR 2021), per image.
 *
 * Suppliers are the ground truths (each with k units) and one background
 * supplier (the rest); every anchor demands one unit. Cost of ground truth j
 * to anchor i: the focal loss of the anchor's class probabilities against
 * j's one-hot label, summed over classes, plus `regWeight * (1 - GIoU(pred_i,
 * gt_j))`; the background's cost is the focal loss against all-zero labels.
 * The official code adds 1e6 where the anchor centre is not both inside the
 * box and inside the centre region (`centreRadius` strides around the box
 * centre, clipped to the box).
 *
 * Candidate restriction, and why it is exact: that 1e6 penalty over eps 0.1
 * makes those plan entries exp(-1e7) = 0, so we never build the dense
 * `[G + 1, N]` cost. Only "valid" pairs (centre in box and in centre region)
 * enter; anchors valid for no ground truth are background directly (in the
 * dense problem they take one background unit each, at no effect on the
 * rest). The background supplies `M - sum k` to the `M` candidate anchors.
 * A ground truth with no valid anchor (tiny or zero-area boxes) gets no
 * positive. If `sum k >= M` (many overlapping boxes, few anchors) the k are
 * scaled down so the background keeps half a unit; the dense problem would
 * then push mass onto penalised anchors instead.
 *
 * Dynamic k uses the IoU of the predicted boxes over valid anchors, as the
 * official code. The official code's regression cost is -log IoU in one
 * config and GIoU in the paper; here it is GIoU. Ties when an anchor picks a
 * supplier go to the lower ground-truth index, then to the background.
 */
export class OtaAssigner implements Assigner {
  readonly name = 'ota' as const;
  readonly needsPredictions = true;
  readonly options: Required<Omit<OtaOptions, 'fixedK' | 'sinkhorn'>> & {
    fixedK: number | undefined;
    sinkhorn: SinkhornOptions;
  };

  constructor(options: OtaOptions = {}) {
    this.options = {
      regWeight: options.regWeight ?? 1.5,
      centreRadius: options.centreRadius ?? 2.5,
      topQ: options.topQ ?? 20,
      fixedK: options.fixedK,
      alpha: options.alpha ?? 0.25,
      gamma: options.gamma ?? 2,
      sinkhorn: options.sinkhorn ?? {},
      rescale: options.rescale ?? true,
      ensureOnePositive: options.ensureOnePositive ?? true,
      insideEps: options.insideEps ?? 0.01,
    };
  }

  assign(input: AssignInput): AssignResult {
    return this.assignDetailed(input).result;
  }

  /** {@link assign} plus the transport problem and its plan, for inspection and tests. */
  assignDetailed(input: AssignInput): { result: AssignResult; transport: OtaTransport | null } {
    const { n, g, c, levelStarts } = checkInput('OTA', input, true);
    if (g === 0) return { result: allBackground(n, 'prediction'), transport: null };
    const o = this.options;
    const strides = input.levelStrides
      ? Float64Array.from(input.levelStrides)
      : inferLevelStrides(input.anchors, levelStarts);
    if (strides.length !== levelStarts.length - 1) {
      throw new RangeError(`OTA: ${strides.length} levelStrides for ${levelStarts.length - 1} levels`);
    }
    const b = input.gtBoxes;
    const index = anchorIndex(input.anchors, levelStarts);

    // Valid (gt, anchor) pairs: centre inside the box and inside the centre region.
    const pairGt: number[] = [];
    const pairAnchor: number[] = [];
    for (let j = 0; j < g; j++) {
      const x1 = b[4 * j]!;
      const y1 = b[4 * j + 1]!;
      const x2 = b[4 * j + 2]!;
      const y2 = b[4 * j + 3]!;
      const gcx = (x1 + x2) / 2;
      const gcy = (y1 + y2) / 2;
      for (let l = 0; l < strides.length; l++) {
        const r = o.centreRadius * strides[l]!;
        const cx1 = Math.max(gcx - r, x1);
        const cy1 = Math.max(gcy - r, y1);
        const cx2 = Math.min(gcx + r, x2);
        const cy2 = Math.min(gcy + r, y2);
        const ranges = centreWindow(index, l, cx1, cx2, cy1, cy2);
        const found: number[] = [];
        for (let t = 0; t < ranges.length; t += 2) {
          for (let q = ranges[t]!; q < ranges[t + 1]!; q++) {
            const i = index.order[q]!;
            const ax = index.cx[i]!;
            const ay = index.cy[i]!;
            if (Math.min(ax - x1, ay - y1, x2 - ax, y2 - ay) <= o.insideEps) continue;
            found.push(i);
          }
        }
        // Anchor order within a ground truth keeps tie-breaking independent of the index.
        found.sort((p, q) => p - q);
        for (const i of found) {
          pairGt.push(j);
          pairAnchor.push(i);
        }
      }
    }
    const numPairs = pairGt.length;
    const gtIndex = new Int32Array(n).fill(BACKGROUND);
    const iou = new Float32Array(n);
    const weights = new Float32Array(n).fill(1);
    if (numPairs === 0) {
      return { result: makeResult(gtIndex, iou, input.gtLabels, g, 'prediction', weights), transport: null };
    }

    // Candidate anchors become the columns; the background row covers them all.
    const colOf = new Int32Array(n).fill(-1);
    const colAnchor: number[] = [];
    for (const i of pairAnchor) {
      if (colOf[i]! < 0) {
        colOf[i] = colAnchor.length;
        colAnchor.push(i);
      }
    }
    const m = colAnchor.length;
    const probs = input.clsProbs!;
    checkRowsFinite('OTA', probs, colAnchor, c, 'clsProbs');
    checkRowsFinite('OTA', input.predBoxes!, colAnchor, 4, 'predBoxes');
    const bgCost = new Float64Array(m);
    for (let col = 0; col < m; col++) {
      const row = colAnchor[col]! * c;
      let s = 0;
      for (let k = 0; k < c; k++) s += focalNegative(probs[row + k]!, o.alpha, o.gamma);
      bgCost[col] = s;
    }
    const gtRows = Int32Array.from(pairGt);
    const preds = gatherRows(input.predBoxes!, pairAnchor);
    const gts = gatherRows(b, gtRows);
    const pairIou = alignedIou(preds, gts);
    const pairGiou = alignedGiou(preds, gts);

    // Rows: ground truths with at least one valid anchor, then the background.
    const rowOf = new Int32Array(g).fill(-1);
    const rowGt: number[] = [];
    for (const j of pairGt) {
      if (rowOf[j]! < 0) {
        rowOf[j] = rowGt.length;
        rowGt.push(j);
      }
    }
    const rows = rowGt.length + 1;
    const bgRow = rows - 1;
    const total = numPairs + m;
    const pairRow = new Int32Array(total);
    const pairCol = new Int32Array(total);
    const cost = new Float64Array(total);
    const iouByRow: number[][] = rowGt.map(() => []);
    for (let k = 0; k < numPairs; k++) {
      const j = pairGt[k]!;
      const i = pairAnchor[k]!;
      const col = colOf[i]!;
      const lab = input.gtLabels[j]!;
      const p = probs[i * c + lab]!;
      const cls = bgCost[col]! - focalNegative(p, o.alpha, o.gamma) + focalPositive(p, o.alpha, o.gamma);
      pairRow[k] = rowOf[j]!;
      pairCol[k] = col;
      cost[k] = cls + o.regWeight * (1 - pairGiou[k]!);
      iouByRow[rowOf[j]!]!.push(pairIou[k]!);
    }
    for (let col = 0; col < m; col++) {
      pairRow[numPairs + col] = bgRow;
      pairCol[numPairs + col] = col;
      cost[numPairs + col] = bgCost[col]!;
    }
    const supply = new Float64Array(rows);
    let sumK = 0;
    for (let r = 0; r < rowGt.length; r++) {
      supply[r] = o.fixedK ?? dynamicK(iouByRow[r]!, o.topQ);
      sumK += supply[r]!;
    }
    if (sumK > m - 0.5) {
      for (let r = 0; r < rowGt.length; r++) supply[r] = (supply[r]! * (m - 0.5)) / sumK;
      sumK = m - 0.5;
    }
    supply[bgRow] = m - sumK;
    const demand = new Float64Array(m).fill(1);
    const problem = { rows, cols: m, pairRow, pairCol, cost, supply, demand };
    const { plan } = sinkhorn(problem, o.sinkhorn);

    const scale = new Float64Array(rows).fill(o.rescale ? 0 : 1);
    if (o.rescale) {
      for (let k = 0; k < total; k++) scale[pairRow[k]!] = Math.max(scale[pairRow[k]!]!, plan[k]!);
      // Anchors outside the candidates each take a full background unit in the dense problem.
      if (m < n) scale[bgRow] = Math.max(scale[bgRow]!, 1);
    }
    // Each anchor's supplier: the largest rescaled transport; strict '>' over pairs in row order
    // gives ties to the lower ground truth, then the background (the last row).
    const bestVal = new Float64Array(m).fill(-1);
    const bestPair = new Int32Array(m).fill(-1);
    for (let k = 0; k < total; k++) {
      const v = plan[k]! / scale[pairRow[k]!]!;
      const col = pairCol[k]!;
      if (v > bestVal[col]!) {
        bestVal[col] = v;
        bestPair[col] = k;
      }
    }
    for (let col = 0; col < m; col++) {
      const i = colAnchor[col]!;
      const k = bestPair[col]!;
      weights[i] = bestVal[col]!;
      if (k >= numPairs) continue;
      gtIndex[i] = pairGt[k]!;
      iou[i] = pairIou[k]!;
    }
    if (o.ensureOnePositive) {
      // Pairs of one ground truth are contiguous (built GT by GT); rank them only when needed.
      const firstPair = new Int32Array(g + 1).fill(-1);
      for (let k = numPairs - 1; k >= 0; k--) firstPair[pairGt[k]!] = k;
      const pairsOf = (j: number): number[] => {
        const out: number[] = [];
        for (let k = firstPair[j]!; k >= 0 && k < numPairs && pairGt[k] === j; k++) out.push(k);
        return out.sort((p, q) => plan[q]! - plan[p]! || p - q);
      };
      ensureOnePositive(
        gtIndex,
        g,
        (j) => pairsOf(j).map((k) => pairAnchor[k]!),
        (i, j) => {
          const k = pairsOf(j).find((q) => pairAnchor[q] === i)!;
          iou[i] = pairIou[k]!;
          weights[i] = plan[k]! / scale[rowOf[j]!]!;
        },
      );
    }
    const result = makeResult(gtIndex, iou, input.gtLabels, g, 'prediction', weights);
    return {
      result,
      transport: { ...problem, plan, rowGt: Int32Array.from(rowGt), colAnchor: Int32Array.from(colAnchor) },
    };
  }
}

/** The sparse transport problem OTA solved and its plan (pairs `[numPairs]` then the background row `[cols]`). */
export interface OtaTransport extends TransportProblem {
  plan: Float64Array;
  /** Ground-truth index of each row but the last (the background). */
  rowGt: Int32Array;
  /** Anchor index of each column. */
  colAnchor: Int32Array;
}

/** `max(1, floor(sum of the q largest IoUs))`, the official OTA / YOLOX rule. */
export function dynamicK(ious: readonly number[], q: number): number {
  const top = [...ious].sort((x, y) => y - x).slice(0, q);
  return Math.max(1, Math.floor(top.reduce((s, v) => s + v, 0)));
}
