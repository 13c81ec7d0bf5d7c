import { cocoBboxIou } from './bbox-iou.js';
import { bucketByImageCategory, type DetectionIndex, type GroundTruthIndex } from './coco-data.js';
import type { EvalParams } from './params.js';

/** Outcome codes of a detection at one (area range, IoU threshold). */
export const FP = 0;
export const TP = 1;
/** Matched to a crowd / out-of-range ground truth, or unmatched and itself out of the area range. */
export const IGNORED = 2;

/**
 * pycocotools `evaluateImg` results for one evaluated category (or for everything, class-agnostic),
 * flattened over images. A "slot" is one of an image's top `maxDets[-1]` detections by score;
 * slots are image-major (ascending image id), then by descending score with ties in file order,
 * i.e. the concatenation order that pycocotools' `accumulate` sorts.
 */
export interface CategoryMatches {
  /** Number of slots S. */
  count: number;
  /** `[S]` detection score. */
  score: Float64Array;
  /** `[S]` rank of the detection within its image (0 = highest score). */
  rank: Int32Array;
  /** `[S]` index into the ground truth's `imgIds`. */
  imageIdx: Int32Array;
  /** `[S]` index of the detection in the validated results (file order, dropped entries skipped). */
  detIdx: Int32Array;
  /** `[S, A, T]` outcome codes `FP` / `TP` / `IGNORED` (slot-major, so one slot's codes share a cache line). */
  outcome: Uint8Array;
  /** `[A]` number of ground truths not ignored (not crowd, inside the area range). */
  numGt: Int32Array;
}

export interface ImageEvaluation {
  /** One entry per evaluated category (`K`), or a single entry when `useCats` is false. */
  categories: CategoryMatches[];
  /** Image indices (into the ground truth's `imgIds`) that were evaluated, ascending. */
  imageIdx: Int32Array;
  /** Category indices (into the ground truth's `catIds`) that were evaluated, ascending. */
  categoryIdx: Int32Array;
}

function grow32(a: Int32Array, n: number): Int32Array {
  return a.length >= n ? a : new Int32Array(Math.max(n, 2 * a.length));
}

class Scratch {
  f64 = new Float64Array(0);
  grow(n: number): void {
    if (this.f64.length < n) this.f64 = new Float64Array(Math.max(n, 2 * this.f64.length));
  }
}

/**
 * Runs pycocotools' `evaluate()` (computeIoU + evaluateImg for every area range) on
 * validated inputs. `imageIdx` / `categoryIdx` restrict the evaluation like
 * `params.imgIds` / `params.catIds` (indices into the ground truth's sorted id lists).
 */
export function evaluateImages(
  gt: GroundTruthIndex,
  dt: DetectionIndex,
  p: EvalParams,
  imageIdx: Int32Array,
  categoryIdx: Int32Array,
): ImageEvaluation {
  const I = gt.imgIds.length;
  const K = gt.catIds.length;
  const evalCat = new Uint8Array(K);
  for (const k of categoryIdx) evalCat[k] = 1;
  const evalImg = new Uint8Array(I);
  for (const i of imageIdx) evalImg[i] = 1;
  const gtKeep = new Uint8Array(gt.count);
  for (let j = 0; j < gt.count; j++) gtKeep[j] = evalCat[gt.catIdx[j]!]! & evalImg[gt.imgIdx[j]!]!;
  const dtKeep = new Uint8Array(dt.count);
  for (let j = 0; j < dt.count; j++) dtKeep[j] = evalCat[dt.catIdx[j]!]! & evalImg[dt.imgIdx[j]!]!;
  const gb = bucketByImageCategory(gt.imgIdx, gt.catIdx, gtKeep, I, K);
  const db = bucketByImageCategory(dt.imgIdx, dt.catIdx, dtKeep, I, K);

  const groups: { lo: number; hi: number }[] = p.useCats
    ? Array.from(categoryIdx, (k) => ({ lo: k, hi: k + 1 }))
    : [{ lo: 0, hi: K }];
  const categories = groups.map(({ lo, hi }) => evaluateGroup(gt, dt, p, imageIdx, gb, db, K, lo, hi));
  return { categories, imageIdx, categoryIdx };
}

function evaluateGroup(
  gt: GroundTruthIndex,
  dt: DetectionIndex,
  p: EvalParams,
  imageIdx: Int32Array,
  gb: { start: Int32Array; order: Int32Array },
  db: { start: Int32Array; order: Int32Array },
  K: number,
  kLo: number,
  kHi: number,
): CategoryMatches {
  const T = p.iouThrs.length;
  const A = p.areaRng.length;
  const maxDet = p.maxDets[p.maxDets.length - 1]!;
  const thr = Float64Array.from(p.iouThrs, (t) => Math.min(t, 1 - 1e-10));

  let S = 0;
  for (const i of imageIdx) S += Math.min(db.start[i * K + kHi]! - db.start[i * K + kLo]!, maxDet);
  const score = new Float64Array(S);
  const rank = new Int32Array(S);
  const slotImage = new Int32Array(S);
  const detIdx = new Int32Array(S);
  const AT = A * T;
  const outcome = new Uint8Array(S * AT);
  const minThr = thr.reduce((x, y) => Math.min(x, y), Number.POSITIVE_INFINITY);
  let candStart: Int32Array = new Int32Array(128);
  let candList: Int32Array = new Int32Array(1024);
  const numGt = new Int32Array(A);

  const iou = new Scratch();
  let gtOrder = new Int32Array(64);
  let gtIgS = new Uint8Array(64);
  let gtCrowdS = new Uint8Array(64);
  let gtIdS = new Float64Array(64);
  let gtMatched = new Uint8Array(64);
  let dtOut = new Uint8Array(64);
  let s0 = 0;
  for (const i of imageIdx) {
    const gLo = gb.start[i * K + kLo]!;
    const gHi = gb.start[i * K + kHi]!;
    const dLo = db.start[i * K + kLo]!;
    const dHi = db.start[i * K + kHi]!;
    const G = gHi - gLo;
    const nd = dHi - dLo;
    if (G === 0 && nd === 0) continue;
    // Highest score first, ties in list order (np.argsort(-score, kind='mergesort')); the
    // list is file order, or category-then-file order when categories are pooled.
    const list = db.order.subarray(dLo, dHi);
    const pos = Array.from({ length: nd }, (_, q) => q).sort(
      (a, b) => dt.score[list[b]!]! - dt.score[list[a]!]! || a - b,
    );
    const D = Math.min(nd, maxDet);
    const dts = pos.slice(0, D).map((q) => list[q]!);
    const gts = gb.order.subarray(gLo, gHi);
    for (let d = 0; d < D; d++) {
      const j = dts[d]!;
      score[s0 + d] = dt.score[j]!;
      rank[s0 + d] = d;
      slotImage[s0 + d] = i;
      detIdx[s0 + d] = j;
    }
    if (G > gtOrder.length) {
      const n = Math.max(G, 2 * gtOrder.length);
      gtOrder = new Int32Array(n);
      gtIgS = new Uint8Array(n);
      gtCrowdS = new Uint8Array(n);
      gtIdS = new Float64Array(n);
      gtMatched = new Uint8Array(n);
    }
    if (D > dtOut.length) dtOut = new Uint8Array(Math.max(D, 2 * dtOut.length));
    const haveIou = G > 0 && D > 0;
    if (haveIou) {
      iou.grow(D * G);
      cocoBboxIou(dt.boxes, dts, gt.boxes, gts, gt.crowd, iou.f64);
    }
    const ious = iou.f64;
    for (let a = 0; a < A; a++) {
      const [lo, hi] = p.areaRng[a]!.range;
      // Ground truths not ignored first, each group in file order (mergesort on the flag).
      let n0 = 0;
      for (let g = 0; g < G; g++) {
        const j = gts[g]!;
        const ar = gt.area[j]!;
        if (!(gt.crowd[j] || ar < lo || ar > hi)) n0++;
      }
      numGt[a]! += n0;
      let w0 = 0;
      let w1 = n0;
      for (let g = 0; g < G; g++) {
        const j = gts[g]!;
        const ar = gt.area[j]!;
        const ig = gt.crowd[j] || ar < lo || ar > hi ? 1 : 0;
        const w = ig ? w1++ : w0++;
        gtOrder[w] = g;
        gtIgS[w] = ig;
        gtCrowdS[w] = gt.crowd[j]!;
        gtIdS[w] = gt.annIds[j]!;
      }
      for (let d = 0; d < D; d++) {
        const ar = dt.area[dts[d]!]!;
        dtOut[d] = ar < lo || ar > hi ? 1 : 0;
      }
      // Candidates per detection: ground truths (in matching order) whose IoU reaches the
      // lowest threshold. Skipping the others is exact: pycocotools' loop would `continue`
      // past them at every threshold.
      if (haveIou) {
        candStart = grow32(candStart, D + 1);
        candList = grow32(candList, D * G);
        let nc = 0;
        for (let d = 0; d < D; d++) {
          candStart[d] = nc;
          const row = d * G;
          for (let g = 0; g < G; g++) if (ious[row + gtOrder[g]!]! >= minThr) candList[nc++] = g;
        }
        candStart[D] = nc;
      }
      for (let t = 0; t < T; t++) {
        const col = a * T + t;
        if (!haveIou) {
          for (let d = 0; d < D; d++) outcome[(s0 + d) * AT + col] = dtOut[d] ? IGNORED : FP;
          continue;
        }
        gtMatched.fill(0, 0, G);
        const th = thr[t]!;
        for (let d = 0; d < D; d++) {
          let best = th;
          let m = -1;
          const row = d * G;
          const cEnd = candStart[d + 1]!;
          for (let c = candStart[d]!; c < cEnd; c++) {
            const g = candList[c]!;
            // A ground truth already matched can take no more detections, unless it is a crowd.
            if (gtMatched[g] && !gtCrowdS[g]) continue;
            // Matched to a regular ground truth and reached the ignored ones: stop.
            if (m > -1 && gtIgS[m] === 0 && gtIgS[g] === 1) break;
            const v = ious[row + gtOrder[g]!]!;
            if (v < best) continue;
            best = v;
            m = g;
          }
          const o = (s0 + d) * AT + col;
          if (m === -1) {
            outcome[o] = dtOut[d] ? IGNORED : FP;
            continue;
          }
          gtMatched[m] = 1;
          // pycocotools records the match as the gt id, so a gt with id 0 reads as "unmatched".
          if (gtIgS[m]) outcome[o] = IGNORED;
          else if (gtIdS[m] !== 0) outcome[o] = TP;
          else outcome[o] = dtOut[d] ? IGNORED : FP;
        }
      }
    }
    s0 += D;
  }
  return { count: S, score, rank, imageIdx: slotImage, detIdx, outcome, numGt };
}
