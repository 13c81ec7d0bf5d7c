/**
 * An entropic optimal-transport problem on a sparse support: suppliers
 * (rows) with `supply`, demanders (columns) with `demand`, and only the
 * listed (row, col) pairs allowed. A pair not listed has infinite cost, which
 * is what a dense solver gives for costs like OTA's `1e6 / eps` anyway
 * (`exp(-1e7)` is 0 in floating point).
 */
export interface TransportProblem {
  rows: number;
  cols: number;
  /** `[P]` row of each allowed pair. */
  pairRow: Int32Array;
  /** `[P]` column of each allowed pair. */
  pairCol: Int32Array;
  /** `[P]` cost of each pair. */
  cost: Float64Array;
  /** `[rows]` mass each row sends; sums to the total demand. */
  supply: Float64Array;
  /** `[cols]` mass each column receives. */
  demand: Float64Array;
}

export interface SinkhornOptions {
  /** Entropy regularisation (default 0.1, as OTA). */
  eps?: number;
  /** Fixed number of iterations (default 50, as OTA). */
  iterations?: number;
}

export interface TransportPlan {
  /** `[P]` mass moved along each pair. */
  plan: Float64Array;
  /** `[rows]` dual potentials (the `u` of the official code, times 1). */
  f: Float64Array;
  /** `[cols]` dual potentials. */
  g: Float64Array;
}

/**
 * Sinkhorn-Knopp in log space: the plan is `exp((f_r + g_c - C_rc) / eps)`
 * and each half-step sets one potential so that its marginal is met exactly,
 * through a log-sum-exp that subtracts the running maximum. Nothing is
 * exponentiated outside [-inf, 0], so costs of any scale (OTA's 1e6 penalty
 * over eps 0.1 included) neither overflow nor vanish to 0/0. Columns first,
 * rows last, as the official OTA code: the row (supply) marginals are exact,
 * the column marginals converge with the iterations.
 */
export function sinkhorn(problem: TransportProblem, options: SinkhornOptions = {}): TransportPlan {
  const eps = options.eps ?? 0.1;
  const iterations = options.iterations ?? 50;
  if (!(eps > 0)) throw new RangeError(`sinkhorn: eps must be > 0, got ${eps}`);
  const { rows, cols, pairRow, pairCol, cost, supply, demand } = problem;
  const p = cost.length;
  const logSupply = Float64Array.from(supply, (s) => Math.log(s));
  const logDemand = Float64Array.from(demand, (d) => Math.log(d));
  const byRow = groupBy(pairRow, rows);
  const byCol = groupBy(pairCol, cols);
  const scaled = Float64Array.from(cost, (v) => v / eps);
  const f = new Float64Array(rows);
  const g = new Float64Array(cols);
  const fe = new Float64Array(rows);
  const ge = new Float64Array(cols);
  for (let it = 0; it < iterations; it++) {
    // g_c = eps * (log d_c - LSE_r((f_r - C_rc) / eps)); then f_r likewise over the row's pairs.
    for (let c = 0; c < cols; c++) {
      g[c] = eps * (logDemand[c]! - logSumExp(byCol, c, pairRow, fe, scaled));
      ge[c] = g[c]! / eps;
    }
    for (let r = 0; r < rows; r++) {
      f[r] = eps * (logSupply[r]! - logSumExp(byRow, r, pairCol, ge, scaled));
      fe[r] = f[r]! / eps;
    }
  }
  const plan = new Float64Array(p);
  for (let k = 0; k < p; k++) plan[k] = Math.exp((f[pairRow[k]!]! + g[pairCol[k]!]! - cost[k]!) / eps);
  return { plan, f, g };
}

/** Pairs grouped by a key (counting sort): pairs of key `b` are `items[start[b] .. start[b + 1])`. */
interface Groups {
  start: Int32Array;
  items: Int32Array;
}

function groupBy(keys: Int32Array, buckets: number): Groups {
  const start = new Int32Array(buckets + 1);
  for (let k = 0; k < keys.length; k++) start[keys[k]! + 1]++;
  for (let b = 0; b < buckets; b++) start[b + 1] += start[b]!;
  const fill = start.slice(0, buckets);
  const items = new Int32Array(keys.length);
  for (let k = 0; k < keys.length; k++) items[fill[keys[k]!]!++] = k;
  return { start, items };
}

/** `log sum_k exp(pot[other[k]] - scaled[k])` over the pairs of bucket `b`, max-subtracted; -inf when empty. */
function logSumExp(
  groups: Groups,
  b: number,
  other: Int32Array,
  pot: Float64Array,
  scaled: Float64Array,
): number {
  const { start, items } = groups;
  const from = start[b]!;
  const to = start[b + 1]!;
  let m = Number.NEGATIVE_INFINITY;
  for (let q = from; q < to; q++) {
    const k = items[q]!;
    const x = pot[other[k]!]! - scaled[k]!;
    if (x > m) m = x;
  }
  if (m === Number.NEGATIVE_INFINITY) return m;
  let s = 0;
  for (let q = from; q < to; q++) {
    const k = items[q]!;
    s += Math.exp(pot[other[k]!]! - scaled[k]! - m);
  }
  return m + Math.log(s);
}
