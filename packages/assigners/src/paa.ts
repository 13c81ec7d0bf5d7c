import { alignedIou, gatherRows } from '@bmc/core';
import { fitGmm1d, type GmmOptions, gmmLogDensity, logWeightedDensity } from './gmm.js';
import { checkInput, checkRowsFinite } from './input.js';
import { MaxIoUAssigner } from './max-iou.js';
import { allBackground, makeResult } from './result.js';
import { smallestKOf } from './topk.js';
import { type Assigner, type AssignInput, type AssignResult, BACKGROUND, IGNORE } from './types.js';

export interface PaaOptions {
  /** Candidates per level and ground truth: the highest-scoring anchors (default 9). */
  topK?: number;
  /** IoU threshold of the initial anchor-to-GT matching that defines who may be a candidate (default 0.1, as the official config). */
  iouThr?: number;
  /** Exponent on the IoU in `score = p_cls * IoU(pred, gt)^lambda` (default 1). */
  lambda?: number;
  /**
   * Values the mixture is fitted to: the score itself (default, as the
   * paper's Fig. 3) or its logarithm, which is (minus) the loss the official
   * code fits when the loss is `-log p - lambda log IoU`.
   */
  space?: 'score' | 'logScore';
  /**
   * Candidates of the high-score component that score below its mode:
   * `'negative'` (default; the official code, Fig. 3(c)) or `'ignore'`
   * (they leave the loss, a grey zone).
   */
  belowMode?: 'negative' | 'ignore';
  /**
   * How the fitted mixture splits the candidates. `'paper'` (default): the
   * PAA paper and its official code, as described above. `'thesis'`: the
   * thesis's rule, by the two component means: candidates below the low
   * component's mean are negative, those between the means ignored, those at
   * or above the high component's mean positive (`belowMode` is then unused).
   */
  selection?: 'paper' | 'thesis';
  /** EM settings passed to {@link fitGmm1d}. */
  gmm?: GmmOptions;
}

/** Per ground truth, what the assigner decided; returned by {@link PaaAssigner.assignDetailed} for inspection. */
export interface PaaGtFit {
  /** Candidate anchors, highest score first. */
  candidates: Int32Array;
  /** Their scores, same order. */
  scores: Float32Array;
  /** How many leading candidates became positive. */
  numPositive: number;
  /** Fitted mixture (component 1 is the high-score one), or null when no fit was needed. */
  gmm: ReturnType<typeof fitGmm1d> | null;
}

/**
 * Probabilistic Anchor Assignment (Kim & Lee, ECCV 2020).
 *
 * 1. Initial matching: MaxIoU with positive = negative threshold `iouThr` and
 *    low-quality matches, as the official code; an anchor can only become a
 *    candidate of the ground truth it was matched to here, so ground truths
 *    never compete for an anchor later.
 * 2. Anchor score `p_cls(gt class) * IoU(predicted box, gt)^lambda`.
 * 3. Per ground truth and level, the `topK` highest-scoring matched anchors
 *    are candidates.
 * 4. A two-component 1-D Gaussian mixture is fitted by EM to the candidates'
 *    scores (component 1 starts at the highest score). Sorting candidates by
 *    score, the positives are those down to the high-component candidate with
 *    the highest mixture density (the mode of the positive component), as
 *    the PAA paper (Fig. 3(c)) and its official code; the rest are negatives,
 *    or ignored with `belowMode: 'ignore'` when they belong to the high
 *    component. The thesis splits by the component means instead
 *    (`selection: 'thesis'`; docs/departures.md).
 *
 * Edge cases, documented choices: a single candidate is positive; when all
 * candidates score the same (range below 1e-12) or none falls in the high
 * component, all are positive ("high recall", as the official code); anchors
 * that are not candidates are background. Ties in ranking go to the lower
 * anchor index.
 */
export class PaaAssigner implements Assigner {
  readonly name = 'paa' as const;
  readonly needsPredictions = true;
  readonly options: Required<Omit<PaaOptions, 'gmm'>> & { gmm: GmmOptions };

  constructor(options: PaaOptions = {}) {
    this.options = {
      topK: options.topK ?? 9,
      iouThr: options.iouThr ?? 0.1,
      lambda: options.lambda ?? 1,
      space: options.space ?? 'score',
      belowMode: options.belowMode ?? 'negative',
      selection: options.selection ?? 'paper',
      gmm: options.gmm ?? {},
    };
  }

  assign(input: AssignInput): AssignResult {
    return this.assignDetailed(input).result;
  }

  /** {@link assign} plus the per-ground-truth candidates and fitted mixtures. */
  assignDetailed(input: AssignInput): { result: AssignResult; fits: PaaGtFit[] } {
    const { n, g, c, levelStarts } = checkInput('PAA', input, true);
    if (g === 0) return { result: allBackground(n, 'prediction'), fits: [] };
    const { topK, iouThr, lambda, space, belowMode, selection } = this.options;
    const initial = new MaxIoUAssigner({ posIouThr: iouThr, negIouThr: iouThr }).assign(input);
    const matched: number[] = [];
    for (let i = 0; i < n; i++) if (initial.gtIndex[i]! >= 0) matched.push(i);
    const matchedGt = Int32Array.from(matched, (i) => initial.gtIndex[i]!);
    checkRowsFinite('PAA', input.clsProbs!, matched, c, 'clsProbs');
    checkRowsFinite('PAA', input.predBoxes!, matched, 4, 'predBoxes');
    const predIou = alignedIou(gatherRows(input.predBoxes!, matched), gatherRows(input.gtBoxes, matchedGt));
    const score = new Float32Array(n);
    const iouOfPred = new Float32Array(n);
    const byGt: number[][] = Array.from({ length: g }, () => []);
    const probs = input.clsProbs!;
    matched.forEach((i, r) => {
      const j = matchedGt[r]!;
      const p = probs[i * c + input.gtLabels[j]!]!;
      score[i] = p * predIou[r]! ** lambda;
      iouOfPred[i] = predIou[r]!;
      byGt[j]!.push(i);
    });

    const gtIndex = new Int32Array(n).fill(BACKGROUND);
    const fits: PaaGtFit[] = [];
    for (let j = 0; j < g; j++) {
      const own = byGt[j]!;
      const parts: number[] = [];
      let p = 0;
      for (let l = 0; l + 1 < levelStarts.length; l++) {
        const inLevel: number[] = [];
        while (p < own.length && own[p]! < levelStarts[l + 1]!) inLevel.push(own[p++]!);
        for (const i of smallestKOf(inLevel, topK, (i) => -score[i]!)) parts.push(i);
      }
      parts.sort((x, y) => score[y]! - score[x]! || x - y);
      const candidates = Int32Array.from(parts);
      const scores = Float32Array.from(parts, (i) => score[i]!);
      if (selection === 'thesis') {
        const { numPositive, numIgnored, gmm } = separateByMeans(scores, space, this.options.gmm);
        for (let r = 0; r < candidates.length; r++) {
          const i = candidates[r]!;
          if (r < numPositive) gtIndex[i] = j;
          else if (r < numPositive + numIgnored) gtIndex[i] = IGNORE;
        }
        fits.push({ candidates, scores, numPositive, gmm });
        continue;
      }
      const { numPositive, gmm, fgBelow } = separate(scores, space, this.options.gmm);
      for (let r = 0; r < candidates.length; r++) {
        const i = candidates[r]!;
        if (r < numPositive) gtIndex[i] = j;
        else if (belowMode === 'ignore' && fgBelow[r]) gtIndex[i] = IGNORE;
      }
      fits.push({ candidates, scores, numPositive, gmm });
    }
    const result = makeResult(gtIndex, iouOfPred, input.gtLabels, g, 'prediction');
    return { result, fits };
  }
}

/** Values the mixture is fitted to, or null when no split is possible (one candidate, or all equal). */
function fitSpace(scores: Float32Array, space: 'score' | 'logScore'): Float64Array | null {
  const k = scores.length;
  if (k <= 1) return null;
  const x = Float64Array.from(scores, (s) => (space === 'score' ? s : Math.log(Math.max(s, 1e-12))));
  const range = x[0]! - x[k - 1]!;
  return range > 1e-12 * Math.max(1, Math.abs(x[0]!)) ? x : null;
}

/**
 * The thesis's rule (candidates sorted best first): at or above the high
 * component's mean positive, between the two means ignored, below the low
 * component's mean negative. No split possible: all positive, as `separate`.
 */
function separateByMeans(
  scores: Float32Array,
  space: 'score' | 'logScore',
  gmmOptions: GmmOptions,
): { numPositive: number; numIgnored: number; gmm: PaaGtFit['gmm'] } {
  const k = scores.length;
  const x = fitSpace(scores, space);
  if (!x) return { numPositive: k, numIgnored: 0, gmm: null };
  const gmm = fitGmm1d(x, gmmOptions);
  const high = Math.max(gmm.means[0], gmm.means[1]);
  const low = Math.min(gmm.means[0], gmm.means[1]);
  let numPositive = 0;
  while (numPositive < k && x[numPositive]! >= high) numPositive++;
  let numIgnored = 0;
  while (numPositive + numIgnored < k && x[numPositive + numIgnored]! >= low) numIgnored++;
  // The best candidate sits at or above the high mean unless EM collapsed; keep at least one positive.
  if (numPositive === 0) return { numPositive: 1, numIgnored: Math.max(0, numIgnored - 1), gmm };
  return { numPositive, numIgnored, gmm };
}

/** Splits candidates (sorted by score, best first) into positives and the rest. */
function separate(
  scores: Float32Array,
  space: 'score' | 'logScore',
  gmmOptions: GmmOptions,
): { numPositive: number; gmm: PaaGtFit['gmm']; fgBelow: boolean[] } {
  const k = scores.length;
  const fgBelow = new Array<boolean>(k).fill(false);
  const x = fitSpace(scores, space);
  if (!x) return { numPositive: k, gmm: null, fgBelow };
  const gmm = fitGmm1d(x, gmmOptions);
  let modeAt = -1;
  let modeDensity = Number.NEGATIVE_INFINITY;
  const fg: boolean[] = [];
  for (let r = 0; r < k; r++) {
    const l0 = logWeightedDensity(x[r]!, gmm.weights[0], gmm.means[0], gmm.variances[0]);
    const l1 = logWeightedDensity(x[r]!, gmm.weights[1], gmm.means[1], gmm.variances[1]);
    // Ties go to the high component, as the official code's tie goes to its low-loss component.
    fg.push(l1 >= l0);
    if (!fg[r]) continue;
    const d = gmmLogDensity(gmm, x[r]!);
    if (d > modeDensity) {
      modeDensity = d;
      modeAt = r;
    }
  }
  if (modeAt < 0) return { numPositive: k, gmm, fgBelow };
  for (let r = modeAt + 1; r < k; r++) fgBelow[r] = fg[r]!;
  return { numPositive: modeAt + 1, gmm, fgBelow };
}
