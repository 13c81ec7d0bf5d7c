/**
 * What to label next: an acquisition score per unlabelled image and a diverse pick of the top N.
 * Pure functions on detections (no model, no files) so the ranking is tested on hand-built cases.
 *
 * Score of one image (higher = label it sooner), with `t` the counting threshold:
 *
 *   uncertainty = mean over candidate detections of H(sigmoid(logit(s) - logit(t)))
 *     (binary entropy in bits of the score re-centred on the threshold: a detection scored exactly
 *     at `t` is a coin flip for the count, 1 bit; one far above or below it is settled, ~0),
 *   disagreement = 1 - (sum of IoUs of detections matched between the image and its horizontal
 *     mirror, at score >= t) / (larger of the two counts): 0 when the model sees the same cells
 *     both ways, 1 when it sees none of them again,
 *   score = uncertainty + disagreement.
 *
 * The IoU branch's localisation quality enters through the detection score (the exported model
 * ranks by the classification and IoU predictions together); the library API does not expose the
 * IoU prediction on its own, so it is not a separate term.
 *
 * Diversity: the batch is picked greedily; each next image maximises
 *   score * (1 - lambda * max similarity to an image already picked),
 * similarity = histogram intersection of the images' colour histograms, times the ratio of their
 * cell counts (smaller / larger). So ten fields of one dense, dark-stained slide do not fill a
 * batch: after the first, the others are penalised by up to `lambda`.
 */

export type Box = readonly [number, number, number, number];

export interface ScoredBox {
  readonly box: Box;
  readonly score: number;
}

export interface ImageEvidence {
  /** Every candidate detection (above the model's candidate threshold), any order. */
  readonly detections: readonly ScoredBox[];
  /** Candidates on the horizontally mirrored image, mapped back to the image's coordinates. */
  readonly flipped: readonly ScoredBox[];
  /** A normalised colour histogram (sums to 1): the descriptor for diversity. */
  readonly histogram: Float32Array | readonly number[];
}

export interface AcquisitionTerms {
  uncertainty: number;
  disagreement: number;
  score: number;
  /** Detections at or above the threshold (the cell count). */
  count: number;
}

const EPS = 1e-6;

const logit = (p: number) => {
  const q = Math.min(Math.max(p, EPS), 1 - EPS);
  return Math.log(q / (1 - q));
};

/** Binary entropy in bits. */
export function entropyBits(p: number): number {
  if (p <= 0 || p >= 1) return 0;
  return -(p * Math.log2(p) + (1 - p) * Math.log2(1 - p));
}

/** Uncertainty of one detection with score `s` about being counted at threshold `t` (0..1 bit). */
export function thresholdEntropy(s: number, t: number): number {
  return entropyBits(1 / (1 + Math.exp(-(logit(s) - logit(t)))));
}

export function iou(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

/**
 * 1 - (summed IoU of a greedy one-to-one matching, best pairs first) / max(|a|, |b|); 0 when both
 * are empty. Pairs below IoU 0.1 do not match (they are different cells).
 */
export function flipDisagreement(a: readonly Box[], b: readonly Box[]): number {
  const n = Math.max(a.length, b.length);
  if (n === 0) return 0;
  const pairs: [number, number, number][] = [];
  for (let i = 0; i < a.length; i++)
    for (let j = 0; j < b.length; j++) {
      const o = iou(a[i]!, b[j]!);
      if (o >= 0.1) pairs.push([o, i, j]);
    }
  pairs.sort((p, q) => q[0] - p[0]);
  const usedA = new Set<number>();
  const usedB = new Set<number>();
  let sum = 0;
  for (const [o, i, j] of pairs) {
    if (usedA.has(i) || usedB.has(j)) continue;
    usedA.add(i);
    usedB.add(j);
    sum += o;
  }
  return 1 - sum / n;
}

/** The acquisition score of one image (see the module comment). */
export function acquisition(e: ImageEvidence, threshold: number): AcquisitionTerms {
  const uncertainty = e.detections.length
    ? e.detections.reduce((s, d) => s + thresholdEntropy(d.score, threshold), 0) / e.detections.length
    : 0;
  const kept = (l: readonly ScoredBox[]) => l.filter((d) => d.score >= threshold).map((d) => d.box);
  const a = kept(e.detections);
  const disagreement = flipDisagreement(a, kept(e.flipped));
  return { uncertainty, disagreement, score: uncertainty + disagreement, count: a.length };
}

/** Histogram intersection times the count ratio: 1 for identical fields, 0 for unrelated ones. */
export function similarity(
  a: { histogram: ArrayLike<number>; count: number },
  b: { histogram: ArrayLike<number>; count: number },
): number {
  let inter = 0;
  for (let i = 0; i < a.histogram.length; i++) inter += Math.min(a.histogram[i]!, b.histogram[i]!);
  const hi = Math.max(a.count, b.count);
  const counts = hi === 0 ? 1 : Math.min(a.count, b.count) / hi;
  return inter * counts;
}

export interface Candidate {
  readonly score: number;
  readonly count: number;
  readonly histogram: ArrayLike<number>;
}

/**
 * Greedy diverse top-n: indices into `items` in pick order. `lambda` 0 is the plain top-n by
 * score; ties go to the earlier item, so the pick is deterministic.
 */
export function pickDiverse(items: readonly Candidate[], n: number, lambda = 0.5): number[] {
  const picked: number[] = [];
  const maxSim = new Float64Array(items.length);
  const taken = new Uint8Array(items.length);
  while (picked.length < Math.min(n, items.length)) {
    let best = -1;
    let bestValue = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < items.length; i++) {
      if (taken[i]) continue;
      const v = items[i]!.score * (1 - lambda * maxSim[i]!);
      if (v > bestValue) {
        bestValue = v;
        best = i;
      }
    }
    taken[best] = 1;
    picked.push(best);
    for (let i = 0; i < items.length; i++)
      if (!taken[i]) maxSim[i] = Math.max(maxSim[i]!, similarity(items[i]!, items[best]!));
  }
  return picked;
}

/** A seeded random pick (the baseline ranking is compared with): mulberry32 + Fisher-Yates. */
export function pickRandom(count: number, n: number, seed: number): number[] {
  let s = seed >>> 0;
  const rand = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const idx = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, Math.min(n, count));
}

/** An 8-bins-per-channel RGB histogram (512 bins, sums to 1), on every 4th pixel. */
export function colourHistogram(
  data: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
): Float32Array {
  const h = new Float32Array(512);
  let n = 0;
  for (let p = 0; p < width * height; p += 4) {
    const o = p * channels;
    h[((data[o]! >> 5) << 6) | ((data[o + 1]! >> 5) << 3) | (data[o + 2]! >> 5)]! += 1;
    n++;
  }
  if (n) for (let i = 0; i < h.length; i++) h[i]! /= n;
  return h;
}
