import * as tf from '@tensorflow/tfjs';
import type { Param } from './sgd.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * AdamW with PyTorch's exact update (`torch.optim.AdamW`, amsgrad off):
 *   w *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * Decoupled decay, so it does not fight the adaptive step. Used by the CPU
 * presets, where a from-scratch network must learn in minutes.
 */
export class AdamW {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private t = 0;

  constructor(readonly options: AdamWOptions) {}

  apply(params: readonly Param[], grads: Record<string, tf.Tensor>, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    this.t++;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const { key, variable: w } of params) {
      const g = grads[w.name];
      if (!g) continue;
      let m = this.m.get(key);
      let v = this.v.get(key);
      if (!m || !v) {
        // Inside tidy: the zeros the variables are initialised from must not outlive them.
        m = tf.tidy(() => tf.variable(tf.zerosLike(w), false));
        v = tf.tidy(() => tf.variable(tf.zerosLike(w), false));
        this.m.set(key, m);
        this.v.set(key, v);
      }
      const mm = m;
      const vv = v;
      tf.tidy(() => {
        mm.assign(tf.add(tf.mul(mm, beta1), tf.mul(g, 1 - beta1)));
        vv.assign(tf.add(tf.mul(vv, beta2), tf.mul(tf.square(g), 1 - beta2)));
        const step = tf.div(tf.div(mm, c1), tf.add(tf.sqrt(tf.div(vv, c2)), eps));
        const decayed = weightDecay > 0 ? tf.mul(w, 1 - lr * weightDecay) : w;
        w.assign(tf.sub(decayed, tf.mul(step, lr)));
      });
    }
  }

  /** Moment buffers (`<key>/m`, `<key>/v`), for checkpoints; the step count is in {@link counters}. */
  state(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    for (const [k, m] of this.m) out[`${k}/m`] = m;
    for (const [k, v] of this.v) out[`${k}/v`] = v;
    return out;
  }

  /** Plain numbers a resume needs (the bias-correction step count). */
  counters(): Record<string, number> {
    return { t: this.t };
  }

  loadCounters(c: Record<string, number> | undefined): void {
    this.t = c?.t ?? 0;
  }

  load(state: Record<string, tf.Tensor>, params: readonly Param[]): void {
    const byKey = new Map(params.map((p) => [p.key, p.variable]));
    for (const [name, value] of Object.entries(state)) {
      const slash = name.lastIndexOf('/');
      const key = name.slice(0, slash);
      const which = name.slice(slash + 1) === 'm' ? this.m : this.v;
      const w = byKey.get(key);
      if (!w) throw new Error(`optimizer state names unknown parameter '${key}'`);
      if (w.shape.join('x') !== value.shape.join('x')) {
        throw new Error(
          `optimizer state for '${key}' has shape [${value.shape}], parameter has [${w.shape}]`,
        );
      }
      which.get(key)?.dispose();
      which.set(key, tf.variable(value, false));
    }
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}
