/**
 * The differential count a hematologist reads: how many cells of each type, and their percentages,
 * among the nucleated cells counted. Cells whose best class probability is below the threshold are
 * counted as "unclassified" rather than guessed; they stay in the denominator, so the percentages
 * (types plus unclassified) add up to 100.
 */

export const UNCLASSIFIED = 'unclassified';

export interface CellCall {
  /** Index into the class names, or -1 when below the confidence threshold. */
  type: number;
  /** Probability of the best class. */
  probability: number;
}

export interface DifferentialCount {
  /** Nucleated cells counted (classified + unclassified). */
  total: number;
  /** Rows in class order, then "unclassified"; `percent` of `total` (0 when total is 0). */
  rows: { type: string; count: number; percent: number }[];
  threshold: number;
}

/** Best class per cell from `[N, K]` probabilities; below `threshold` the cell is unclassified (-1). */
export function callCells(probs: Float32Array, k: number, threshold: number): CellCall[] {
  const calls: CellCall[] = [];
  for (let r = 0; r < probs.length / k; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[r * k + j]! > probs[r * k + best]!) best = j;
    const p = probs[r * k + best]!;
    calls.push({ type: p >= threshold ? best : -1, probability: p });
  }
  return calls;
}

/**
 * Counts calls into a differential. `exclude` names classes that are not nucleated marrow cells
 * (e.g. `platelet`): they are left out of the count entirely, as a manual differential leaves them.
 */
export function differentialCount(
  calls: readonly CellCall[],
  classNames: readonly string[],
  threshold: number,
  exclude: readonly string[] = [],
): DifferentialCount {
  const skip = new Set(exclude);
  const counts = new Array<number>(classNames.length).fill(0);
  let unclassified = 0;
  for (const c of calls) {
    if (c.type < 0) unclassified++;
    else counts[c.type]!++;
  }
  const rows = classNames.map((type, i) => ({ type, count: counts[i]! })).filter((r) => !skip.has(r.type));
  rows.push({ type: UNCLASSIFIED, count: unclassified });
  const total = rows.reduce((a, r) => a + r.count, 0);
  return {
    total,
    threshold,
    rows: rows.map((r) => ({ ...r, percent: total ? (100 * r.count) / total : 0 })),
  };
}

/** Adds per-image differentials into one per-run differential (same classes and threshold). */
export function sumDifferentials(parts: readonly DifferentialCount[]): DifferentialCount | undefined {
  const first = parts[0];
  if (!first) return undefined;
  const counts = first.rows.map((r) => r.count);
  for (const p of parts.slice(1)) {
    p.rows.forEach((r, i) => {
      counts[i]! += r.count;
    });
  }
  const total = counts.reduce((a, b) => a + b, 0);
  return {
    total,
    threshold: first.threshold,
    rows: first.rows.map((r, i) => ({
      type: r.type,
      count: counts[i]!,
      percent: total ? (100 * counts[i]!) / total : 0,
    })),
  };
}
