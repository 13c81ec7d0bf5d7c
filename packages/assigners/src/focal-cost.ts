/** Probabilities are clamped to `[PROB_EPS, 1 - PROB_EPS]` before the logarithm, so a saturated sigmoid costs a large finite amount. */
export const PROB_EPS = 1e-12;

/** Focal loss of probability `p` for a positive target: `alpha (1 - p)^gamma (-log p)`. */
export function focalPositive(p: number, alpha: number, gamma: number): number {
  const q = Math.min(Math.max(p, PROB_EPS), 1 - PROB_EPS);
  return -alpha * (1 - q) ** gamma * Math.log(q);
}

/** Focal loss of probability `p` for a negative target: `(1 - alpha) p^gamma (-log(1 - p))`. */
export function focalNegative(p: number, alpha: number, gamma: number): number {
  const q = Math.min(Math.max(p, PROB_EPS), 1 - PROB_EPS);
  return -(1 - alpha) * q ** gamma * Math.log(1 - q);
}
