import { boxArea } from '@bmc/core';
import { anchorIndex, centreWindow } from './anchor-index.js';
import { checkInput } from './input.js';
import { allBackground, makeResult } from './result.js';
import { type Assigner, type AssignInput, type AssignResult, BACKGROUND, IGNORE } from './types.js';

export interface MaxIoUOptions {
  /** Anchors whose best IoU is at least this are positives (default 0.5). */
  posIouThr?: number;
  /**
   * Negatives: best IoU below this number (default 0.4), or inside the range
   * `[lo, hi)`; anchors below `lo` are then ignored, as in mmdetection.
   * Everything that is neither positive nor negative is {@link IGNORE}.
   */
  negIouThr?: number | readonly [number, number];
  /**
   * Keep each ground truth's best anchors as positives even below `posIouThr`
   * (torchvision `allow_low_quality_matches`, mmdetection `match_low_quality`). Default true.
   */
  matchLowQuality?: boolean;
  /** A low-quality match is only made when the ground truth's best IoU reaches this (mmdetection `min_pos_iou`). Default 0. */
  minPosIou?: number;
  /**
   * Which ground truth a low-quality anchor goes to. `'argmax'` (default):
   * the anchor's own highest-IoU ground truth, exactly torchvision's Matcher;
   * `'gt'`: the ground truth it is the best anchor for (mmdetection
   * `gt_max_assign_all`, later ground truths win ties).
   */
  lowQualityTarget?: 'argmax' | 'gt';
}

/**
 * Fixed IoU thresholds between anchors and ground truths (RetinaNet / Faster
 * R-CNN). Equal to torchvision's `Matcher(0.5, 0.4, allow_low_quality_matches=True)`
 * with the defaults, with one deliberate difference: a ground truth whose best
 * IoU is 0 (a zero-area box, or one no anchor touches) makes no low-quality
 * match, where torchvision would turn every anchor with IoU 0 into a positive.
 * Ties for an anchor's best ground truth go to the lower index, as torch's `max`.
 */
export class MaxIoUAssigner implements Assigner {
  readonly name = 'maxiou' as const;
  readonly needsPredictions = false;
  readonly options: Required<MaxIoUOptions>;

  constructor(options: MaxIoUOptions = {}) {
    this.options = {
      posIouThr: options.posIouThr ?? 0.5,
      negIouThr: options.negIouThr ?? 0.4,
      matchLowQuality: options.matchLowQuality ?? true,
      minPosIou: options.minPosIou ?? 0,
      lowQualityTarget: options.lowQualityTarget ?? 'argmax',
    };
    const { posIouThr, negIouThr } = this.options;
    const negHi = typeof negIouThr === 'number' ? negIouThr : negIouThr[1];
    if (negHi > posIouThr) throw new RangeError(`MaxIoU: negIouThr ${negHi} above posIouThr ${posIouThr}`);
  }

  assign(input: AssignInput): AssignResult {
    const { n, g, levelStarts } = checkInput('MaxIoU', input, false);
    if (g === 0) return allBackground(n, 'anchor');
    const { posIouThr, negIouThr, matchLowQuality, minPosIou, lowQualityTarget } = this.options;
    const [negLo, negHi] = typeof negIouThr === 'number' ? [0, negIouThr] : negIouThr;
    const a = input.anchors;
    const b = input.gtBoxes;
    // Same arithmetic as @bmc/core's boxIou (float32 areas, double quotient rounded to float32), so
    // the values equal torchvision's; but kept sparse, per ground truth, since most pairs are 0.
    const index = anchorIndex(a, levelStarts);
    const areaA = index.area;
    const areaB = boxArea(b);
    const hits: Array<{ anchor: Int32Array; iou: Float32Array; top: number }> = [];
    const best = new Float32Array(n);
    const arg = new Int32Array(n);
    const bufA = new Int32Array(n);
    const bufV = new Float32Array(n);
    for (let j = 0; j < g; j++) {
      const gx1 = b[4 * j]!;
      const gy1 = b[4 * j + 1]!;
      const gx2 = b[4 * j + 2]!;
      const gy2 = b[4 * j + 3]!;
      const ab = areaB[j]!;
      let k = 0;
      let top = 0;
      for (let l = 0; l + 1 < levelStarts.length; l++) {
        // Only anchors whose centre is within (their level's largest half-size + 1 px) of the box can overlap it.
        const rx = index.maxHalfWidth[l]! + 1;
        const ry = index.maxHalfHeight[l]! + 1;
        const ranges = centreWindow(index, l, gx1 - rx, gx2 + rx, gy1 - ry, gy2 + ry);
        for (let t = 0; t < ranges.length; t += 2) {
          for (let p = ranges[t]!; p < ranges[t + 1]!; p++) {
            const i = index.order[p]!;
            const w = Math.min(a[4 * i + 2]!, gx2) - Math.max(a[4 * i]!, gx1);
            if (w <= 0) continue;
            const h = Math.min(a[4 * i + 3]!, gy2) - Math.max(a[4 * i + 1]!, gy1);
            if (h <= 0) continue;
            const inter = w * h;
            const union = areaA[i]! + ab - inter;
            const v = union > 0 ? Math.fround(inter / union) : 0;
            if (v <= 0) continue;
            bufA[k] = i;
            bufV[k++] = v;
            if (v > top) top = v;
            // Strictly greater with j ascending: ties go to the lower ground-truth index, as torch's max.
            if (v > best[i]!) {
              best[i] = v;
              arg[i] = j;
            }
          }
        }
      }
      hits.push({ anchor: bufA.slice(0, k), iou: bufV.slice(0, k), top });
    }
    const gtIndex = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const v = best[i]!;
      gtIndex[i] = v >= posIouThr ? arg[i]! : v >= negLo && v < negHi ? BACKGROUND : IGNORE;
    }
    if (matchLowQuality) {
      for (let j = 0; j < g; j++) {
        const { anchor, iou, top } = hits[j]!;
        if (top <= 0 || top < minPosIou) continue;
        for (let k = 0; k < anchor.length; k++) {
          if (iou[k] === top) gtIndex[anchor[k]!] = lowQualityTarget === 'argmax' ? arg[anchor[k]!]! : j;
        }
      }
    }
    // Every positive's IoU with its own ground truth: best[i] when it went to its argmax, else look it up.
    const iou = new Float32Array(n);
    for (let i = 0; i < n; i++) if (gtIndex[i]! >= 0 && gtIndex[i] === arg[i]) iou[i] = best[i]!;
    if (matchLowQuality && lowQualityTarget === 'gt') {
      for (let j = 0; j < g; j++) {
        const h = hits[j]!;
        for (let k = 0; k < h.anchor.length; k++)
          if (gtIndex[h.anchor[k]!] === j) iou[h.anchor[k]!] = h.iou[k]!;
      }
    }
    return makeResult(gtIndex, iou, input.gtLabels, g, 'anchor');
  }
}
