/** A two-component 1-D Gaussian mixture. Index 0 starts at the smallest value, index 1 at the largest. */
export interface Gmm1d {
  weights: [number, number];
  means: [number, number];
  variances: [number, number];
  /** Total log-likelihood of the data after each E-step, the first under the initial parameters. Non-decreasing. */
  logLikelihoods: number[];
  /** EM iterations run (M-steps). */
  iterations: number;
  converged: boolean;
}

export interface GmmOptions {
  /** Most EM iterations (default 100). */
  maxIterations?: number;
  /** Stop when the log-likelihood gains less than `tol * max(1, |LL|)` (default 1e-8). */
  tol?: number;
  /**
   * Lower bound on each variance (default 1e-6). A floor rather than
   * sklearn's additive `reg_covar`: clamping is the exact maximiser of the
   * M-step over the allowed set, so EM stays monotone, and a component
   * cannot collapse onto one point when the values are nearly constant.
   */
  varianceFloor?: number;
}

const LOG_2PI = Math.log(2 * Math.PI);

/** `log(w N(x | m, v))`. */
export function logWeightedDensity(x: number, w: number, m: number, v: number): number {
  return Math.log(w) - 0.5 * (LOG_2PI + Math.log(v)) - ((x - m) * (x - m)) / (2 * v);
}

function logAddExp(a: number, b: number): number {
  if (a === Number.NEGATIVE_INFINITY) return b;
  if (b === Number.NEGATIVE_INFINITY) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

/**
 * Fits two Gaussians to `values` by EM, everything in log space. Initialised
 * as PAA's official code does (means at the minimum and maximum, equal
 * weights), with both variances set to the sample variance (floored) instead
 * of its fixed precision 1, which ignores the scale of the data.
 */
export function fitGmm1d(values: ArrayLike<number>, options: GmmOptions = {}): Gmm1d {
  const maxIterations = options.maxIterations ?? 100;
  const tol = options.tol ?? 1e-8;
  const floor = options.varianceFloor ?? 1e-6;
  const k = values.length;
  if (k === 0) throw new RangeError('fitGmm1d: no values');
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  let mean = 0;
  for (let i = 0; i < k; i++) {
    const x = values[i]!;
    if (!Number.isFinite(x)) throw new RangeError(`fitGmm1d: non-finite value ${x} at index ${i}`);
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
    mean += x;
  }
  mean /= k;
  let variance = 0;
  for (let i = 0; i < k; i++) variance += (values[i]! - mean) ** 2;
  variance = Math.max(variance / k, floor);
  const w: [number, number] = [0.5, 0.5];
  const m: [number, number] = [lo, hi];
  const v: [number, number] = [variance, variance];
  const r1 = new Float64Array(k);
  const logLikelihoods: number[] = [];
  let iterations = 0;
  let converged = false;
  for (;;) {
    // E-step: responsibilities of component 1 and the log-likelihood.
    let ll = 0;
    for (let i = 0; i < k; i++) {
      const x = values[i]!;
      const l0 = logWeightedDensity(x, w[0], m[0], v[0]);
      const l1 = logWeightedDensity(x, w[1], m[1], v[1]);
      const lse = logAddExp(l0, l1);
      ll += lse;
      r1[i] = Math.exp(l1 - lse);
    }
    const prev = logLikelihoods.at(-1);
    logLikelihoods.push(ll);
    if (prev !== undefined && ll - prev < tol * Math.max(1, Math.abs(ll))) {
      converged = true;
      break;
    }
    if (iterations >= maxIterations) break;
    // M-step. A component that lost all its mass keeps its mean and variance
    // (any value maximises its zero-weight terms), so nothing divides by 0.
    let n1 = 0;
    let s0 = 0;
    let s1 = 0;
    for (let i = 0; i < k; i++) {
      n1 += r1[i]!;
      s1 += r1[i]! * values[i]!;
      s0 += (1 - r1[i]!) * values[i]!;
    }
    const n0 = k - n1;
    const tiny = 1e-12 * k;
    if (n0 > tiny) m[0] = s0 / n0;
    if (n1 > tiny) m[1] = s1 / n1;
    let q0 = 0;
    let q1 = 0;
    for (let i = 0; i < k; i++) {
      const x = values[i]!;
      q0 += (1 - r1[i]!) * (x - m[0]) ** 2;
      q1 += r1[i]! * (x - m[1]) ** 2;
    }
    if (n0 > tiny) v[0] = Math.max(q0 / n0, floor);
    if (n1 > tiny) v[1] = Math.max(q1 / n1, floor);
    // Weights stay strictly inside (0, 1) so log(w) is finite.
    w[1] = Math.min(Math.max(n1 / k, 1e-300), 1 - 1e-16);
    w[0] = 1 - w[1];
    iterations++;
  }
  return { weights: w, means: m, variances: v, logLikelihoods, iterations, converged };
}

/** The component with the larger weighted density at `x` (sklearn's `predict`; ties go to 0). */
export function gmmComponent(gmm: Gmm1d, x: number): 0 | 1 {
  const l0 = logWeightedDensity(x, gmm.weights[0], gmm.means[0], gmm.variances[0]);
  const l1 = logWeightedDensity(x, gmm.weights[1], gmm.means[1], gmm.variances[1]);
  return l1 > l0 ? 1 : 0;
}

/** Log-density of the mixture at `x` (sklearn's `score_samples`). */
export function gmmLogDensity(gmm: Gmm1d, x: number): number {
  return logAddExp(
    logWeightedDensity(x, gmm.weights[0], gmm.means[0], gmm.variances[0]),
    logWeightedDensity(x, gmm.weights[1], gmm.means[1], gmm.variances[1]),
  );
}
