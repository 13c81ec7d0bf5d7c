import * as tf from '@tensorflow/tfjs';

/** A trainable variable and the stable key an optimizer keeps its state under (as the trainer's `Param`). */
export interface ClassifierParam {
  key: string;
  variable: tf.Variable;
}

/** What a step needs of an optimizer: the trainer's SGD / AdamW (PyTorch update rules) fit. */
export interface StepOptimizer {
  apply(params: readonly ClassifierParam[], grads: Record<string, tf.Tensor>, lr: number): void;
}

export interface ClassifierStepContext {
  model: tf.LayersModel;
  params: readonly ClassifierParam[];
  optimizer: StepOptimizer;
  /** Max global gradient norm (0 = no clipping). */
  clipGradNorm?: number;
  /** Label smoothing of the cross-entropy target (0 = none). */
  labelSmoothing?: number;
}

export interface ClassifierStepResult {
  finite: boolean;
  loss: number;
  /** Share of the batch predicted right (training mode forward pass). */
  accuracy: number;
  gradNorm: number;
}

/** Trainable parameters keyed by their original layer-weight names (stable across model instances). */
export function classifierParams(model: tf.LayersModel): ClassifierParam[] {
  return model.trainableWeights.map((w) => ({ key: w.originalName, variable: w.read() as tf.Variable }));
}

/**
 * One optimizer step of softmax cross-entropy on a batch: `x` `[N, S, S, 3]` normalised crops,
 * `labels` class indices. BatchNorm runs in training mode (batch statistics, running averages
 * updated). A non-finite loss changes no weight. Every tensor made here is disposed.
 */
export function classifierStep(
  ctx: ClassifierStepContext,
  x: tf.Tensor4D,
  labels: Int32Array,
  lr: number,
): ClassifierStepResult {
  const k = (ctx.model.outputs[0]!.shape[1] as number) ?? 0;
  const y = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), k));
  let correct = 0;
  const { value, grads } = tf.variableGrads(
    () => {
      const logits = ctx.model.apply(x, { training: true }) as tf.Tensor2D;
      const pred = tf.argMax(logits, 1);
      const p = pred.dataSync();
      for (let i = 0; i < labels.length; i++) if (p[i] === labels[i]) correct++;
      pred.dispose();
      return tf.losses.softmaxCrossEntropy(y, logits, undefined, ctx.labelSmoothing ?? 0) as tf.Scalar;
    },
    ctx.params.map((p) => p.variable),
  );
  y.dispose();
  const loss = value.dataSync()[0]!;
  value.dispose();
  const names = Object.keys(grads);
  const sq = tf.tidy(() => tf.addN(names.map((n) => tf.sum(tf.square(grads[n]!)))));
  const gradNorm = Math.sqrt(sq.dataSync()[0]!);
  sq.dispose();
  const finite = Number.isFinite(loss) && Number.isFinite(gradNorm);
  if (finite) {
    const max = ctx.clipGradNorm ?? 0;
    if (max > 0 && gradNorm > max) {
      const s = max / (gradNorm + 1e-6);
      for (const n of names) {
        const g = grads[n]!;
        grads[n] = tf.mul(g, s);
        g.dispose();
      }
    }
    ctx.optimizer.apply(ctx.params, grads, lr);
  }
  tf.dispose(grads);
  return { finite, loss, accuracy: correct / labels.length, gradNorm };
}

/** Logits `[N, K]` for normalised crops, in inference mode, `batch` crops at a time. */
export function predictLogits(
  model: tf.LayersModel,
  x: Float32Array,
  cropSize: number,
  batch = 32,
): Float32Array {
  const per = cropSize * cropSize * 3;
  const n = x.length / per;
  const k = model.outputs[0]!.shape[1] as number;
  const out = new Float32Array(n * k);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const logits = tf.tidy(() => {
      const t = tf.tensor4d(x.subarray(s * per, (s + m) * per), [m, cropSize, cropSize, 3]);
      return model.predict(t) as tf.Tensor;
    });
    out.set(logits.dataSync() as Float32Array, s * k);
    logits.dispose();
  }
  return out;
}
