import * as tf from '@tensorflow/tfjs';

/** A trainable variable and the stable key its optimizer state is saved under. */
export interface Param {
  key: string;
  variable: tf.Variable;
}

export interface SgdOptions {
  momentum: number;
  weightDecay: number;
}

/**
 * SGD with momentum and L2 weight decay, with PyTorch's exact update
 * (`torch.optim.SGD`, dampening 0, no Nesterov):
 *   g = grad + wd * w;  v = momentum * v + g  (v = g on the first step);  w -= lr * v.
 * tfjs's own momentum optimizer has no weight decay and scales differently
 * (`v = m v + g` but applies `lr` inside), so the thesis schedule would not
 * carry over. The velocity buffers are plain variables, exported for checkpoints.
 */
export class Sgd {
  private readonly velocity = new Map<string, tf.Variable>();
  private started = new Set<string>();

  constructor(readonly options: SgdOptions) {}

  /**
   * Applies one step. `grads` maps `tf.Variable` names to gradients (frozen
   * variables are simply absent). Buffers are kept under each parameter's
   * `key`, which must be stable across model instances (tfjs renames
   * variables of a second model built in one process, `conv1/kernel_1`).
   */
  apply(params: readonly Param[], grads: Record<string, tf.Tensor>, lr: number): void {
    const { momentum, weightDecay } = this.options;
    for (const { key, variable: v } of params) {
      const g = grads[v.name];
      if (!g) continue;
      tf.tidy(() => {
        let d: tf.Tensor = weightDecay > 0 ? tf.add(g, tf.mul(v, weightDecay)) : g;
        if (momentum > 0) {
          let buf = this.velocity.get(key);
          if (!buf) {
            buf = tf.variable(tf.zerosLike(v), false);
            this.velocity.set(key, buf);
          }
          const next = this.started.has(key) ? tf.add(tf.mul(buf, momentum), d) : d;
          buf.assign(next);
          this.started.add(key);
          d = next;
        }
        v.assign(tf.sub(v, tf.mul(d, lr)));
      });
    }
  }

  /** Velocity buffers by parameter key (for checkpoints). */
  state(): Record<string, tf.Tensor> {
    return Object.fromEntries([...this.velocity].filter(([k]) => this.started.has(k)));
  }

  /** Restores buffers saved by {@link state}; keys and shapes must match the parameters. */
  load(state: Record<string, tf.Tensor>, params: readonly Param[]): void {
    const byKey = new Map(params.map((p) => [p.key, p.variable]));
    for (const [key, value] of Object.entries(state)) {
      const v = byKey.get(key);
      if (!v) throw new Error(`optimizer state names unknown parameter '${key}'`);
      if (v.shape.join('x') !== value.shape.join('x')) {
        throw new Error(
          `optimizer state for '${key}' has shape [${value.shape}], parameter has [${v.shape}]`,
        );
      }
      this.velocity.get(key)?.dispose();
      this.velocity.set(key, tf.variable(value, false));
      this.started.add(key);
    }
  }

  /** SGD keeps no counters: momentum buffers say it all. */
  counters(): Record<string, number> {
    return {};
  }

  loadCounters(_c: Record<string, number> | undefined): void {}

  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
    this.velocity.clear();
    this.started.clear();
  }
}

/**
 * Scales gradients in place so that their global L2 norm is at most `maxNorm`
 * (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
 */
export function clipGradNorm(grads: Record<string, tf.Tensor>, maxNorm: number): number {
  const names = Object.keys(grads);
  if (names.length === 0) return 0;
  const sq = tf.tidy(() => tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!)))));
  const norm = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const n of names) {
      const old = grads[n]!;
      grads[n] = tf.mul(old, scale);
      old.dispose();
    }
  }
  return norm;
}
