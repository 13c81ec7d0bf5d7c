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
  /**
   * Iterations between absorptions in the stabilised scaling form (default
   * 10); 0 runs every iteration in log space (the reference; ~10x more `exp`).
   */
  absorbEvery?: number;
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
 * Sinkhorn-Knopp with the plan written as `exp((f_r + g_c - C_rc) / eps)`.
 * Log space: each half-step sets one potential so that its marginal is met
 * exactly, through a log-sum-exp that subtracts the maximum, so nothing
 * overflows or turns into 0/0 whatever the cost scale (OTA's 1e6 penalty over
 * eps 0.1 included). Columns first, rows last, as the official OTA code: the
 * row (supply) marginals are exact, the column marginals converge with the
 * iterations.
 *
 * For speed the first iteration runs in log space and the rest in the
 * stabilised scaling form (Schmitzer 2019): the kernel `exp((f + g - C) /
 * eps)` is formed with the current potentials, plain scalings `u, v` are
 * iterated with multiply-adds only, and every `absorbEvery` iterations (or
 * as soon as a scaling leaves [1e-100, 1e100]) they are absorbed back into
 * `f, g`. After an absorption every row and column holds its current plan,
 * so no row or column underflows as a whole; if one ever does, the remaining
 * iterations run in log space. Same iterates as log space up to rounding.
 */
export function sinkhorn(problem: TransportProblem, options: SinkhornOptions = {}): TransportPlan {
  const eps = options.eps ?? 0.1;
  const iterations = options.iterations ?? 50;
  const absorbEvery = options.absorbEvery ?? 10;
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
  const logIteration = () => {
    // g_c = eps * (log d_c - LSE_r((f_r - C_rc) / eps)); then f_r likewise over the row's pairs.
    for (let c = 0; c < cols; c++) {
      g[c] = eps * (logDemand[c]! - logSumExp(byCol, c, pairRow, fe, scaled));
      ge[c] = g[c]! / eps;
    }
    for (let r = 0; r < rows; r++) {
      f[r] = eps * (logSupply[r]! - logSumExp(byRow, r, pairCol, ge, scaled));
      fe[r] = f[r]! / eps;
    }
  };
  let done = 0;
  if (iterations > 0) {
    logIteration();
    done = 1;
  }
  const kernel = new Float64Array(p);
  const u = new Float64Array(rows);
  const v = new Float64Array(cols);
  const uPrev = new Float64Array(rows);
  const vPrev = new Float64Array(cols);
  let logOnly = absorbEvery <= 0;
  while (done < iterations && !logOnly) {
    for (let k = 0; k < p; k++) kernel[k] = Math.exp(fe[pairRow[k]!]! + ge[pairCol[k]!]! - scaled[k]!);
    u.fill(1);
    v.fill(1);
    let steps = 0;
    while (steps < absorbEvery && done < iterations) {
      uPrev.set(u);
      vPrev.set(v);
      if (!(scale(byCol, pairRow, kernel, u, demand, v) && scale(byRow, pairCol, kernel, v, supply, u))) {
        // A whole row or column underflowed: keep the last complete step and finish in log space.
        u.set(uPrev);
        v.set(vPrev);
        logOnly = true;
        break;
      }
      steps++;
      done++;
      if (!(inRange(u) && inRange(v))) break;
    }
    // Absorb: f += eps log u, g += eps log v.
    for (let r = 0; r < rows; r++) {
      fe[r] = fe[r]! + Math.log(u[r]!);
      f[r] = eps * fe[r]!;
    }
    for (let c = 0; c < cols; c++) {
      ge[c] = ge[c]! + Math.log(v[c]!);
      g[c] = eps * ge[c]!;
    }
  }
  // Whatever is left (only when a scaling failed): log space, from the last absorbed potentials.
  while (done < iterations) {
    logIteration();
    done++;
  }
  const plan = new Float64Array(p);
  for (let k = 0; k < p; k++) plan[k] = Math.exp((f[pairRow[k]!]! + g[pairCol[k]!]! - cost[k]!) / eps);
  return { plan, f, g };
}

/** `out_b = target_b / sum_k kernel_k * other[otherIndex_k]` over bucket b's pairs; false if a sum is 0 or not finite. */
function scale(
  groups: Groups,
  otherIndex: Int32Array,
  kernel: Float64Array,
  other: Float64Array,
  target: Float64Array,
  out: Float64Array,
): boolean {
  const { start, items } = groups;
  for (let b = 0; b + 1 < start.length; b++) {
    let s = 0;
    for (let q = start[b]!; q < start[b + 1]!; q++) {
      const k = items[q]!;
      s += kernel[k]! * other[otherIndex[k]!]!;
    }
    if (!(s > 0 && s < Number.POSITIVE_INFINITY)) return false;
    out[b] = target[b]! / s;
  }
  return true;
}

function inRange(x: Float64Array): boolean {
  for (let i = 0; i < x.length; i++) if (!(x[i]! > 1e-100 && x[i]! < 1e100)) return false;
  return true;
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
