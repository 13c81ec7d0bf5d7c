/**
 * Learning rate at an optimizer step: linear warm-up from `base * warmupFactor`
 * to `base` over `warmupIters` steps (mmdetection's "linear" warm-up), times
 * `gamma` for every step epoch already passed (PyTorch's MultiStepLR on epochs).
 */
export interface LrSchedule {
  lr: number;
  steps: readonly number[];
  gamma: number;
  warmupIters: number;
  warmupFactor: number;
}

export function learningRate(s: LrSchedule, iteration: number, epoch: number): number {
  let lr = s.lr;
  for (const step of s.steps) if (epoch >= step) lr *= s.gamma;
  if (iteration < s.warmupIters) {
    const alpha = iteration / s.warmupIters;
    lr *= s.warmupFactor * (1 - alpha) + alpha;
  }
  return lr;
}
