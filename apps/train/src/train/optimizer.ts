import type * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import { AdamW } from './adamw.js';
import { type Param, Sgd } from './sgd.js';

/** What the training loop needs of an optimizer; both follow PyTorch's update rules exactly. */
export interface Optimizer {
  readonly options: object;
  apply(params: readonly Param[], grads: Record<string, tf.Tensor>, lr: number): void;
  /** Tensor state by stable parameter key; the tensors stay owned by the optimizer. */
  state(): Record<string, tf.Tensor>;
  /** Scalar state (step counts), saved as JSON beside the tensors. */
  counters(): Record<string, number>;
  loadCounters(c: Record<string, number> | undefined): void;
  load(state: Record<string, tf.Tensor>, params: readonly Param[]): void;
  dispose(): void;
}

export function createOptimizer(config: TrainConfig): Optimizer {
  const o = config.optim;
  return o.type === 'adamw'
    ? new AdamW({ beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay })
    : new Sgd({ momentum: o.momentum, weightDecay: o.weightDecay });
}
