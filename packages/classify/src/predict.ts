import * as tf from '@tensorflow/tfjs';

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
