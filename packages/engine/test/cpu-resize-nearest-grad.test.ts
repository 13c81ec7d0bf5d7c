import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixCpuResizeNearestNeighborGrad } from '../src/cpu-resize-nearest-grad.js';

// Gradient of sum(resize(x) * w) with respect to x: w summed over the output pixels that read each input
// pixel. For an exact 2x upsample those are the 2x2 blocks, written out by hand here.
function handGrad2x(w: number[][][][]): number[][][][] {
  return w.map((img) =>
    Array.from({ length: img.length / 2 }, (_, i) =>
      Array.from({ length: img[0]!.length / 2 }, (_, j) =>
        img[0]![0]!.map((_, c) => {
          let s = 0;
          for (const di of [0, 1]) for (const dj of [0, 1]) s += img[2 * i + di]![2 * j + dj]![c]!;
          return s;
        }),
      ),
    ),
  );
}

const gradOf = (x: tf.Tensor4D, w: tf.Tensor4D, alignCorners = false, halfPixelCenters = false) =>
  tf.grad((t: tf.Tensor) =>
    tf.sum(
      tf.mul(
        tf.image.resizeNearestNeighbor(
          t as tf.Tensor4D,
          [w.shape[1], w.shape[2]],
          alignCorners,
          halfPixelCenters,
        ),
        w,
      ),
    ),
  )(x);

const maxDiff = (a: tf.Tensor, b: tf.Tensor | number[][][][]) =>
  tf.tidy(() => tf.max(tf.abs(tf.sub(a, b instanceof tf.Tensor ? b : tf.tensor(b)))).dataSync()[0]!);

describe('ResizeNearestNeighborGrad on the cpu backend', () => {
  let original: tf.KernelConfig | undefined;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    original = tf.getKernel('ResizeNearestNeighborGrad', 'cpu') as tf.KernelConfig | undefined;
  });
  afterAll(() => {
    tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
    if (original) tf.registerKernel(original);
  });

  it('tfjs-backend-cpu 4.22 is wrong beyond the first image of a batch (why the fix exists)', () => {
    const x = tf.randomNormal([3, 4, 5, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal([3, 8, 10, 2], 0, 1, 'float32', 2) as tf.Tensor4D;
    const want = handGrad2x(w.arraySync());
    const g = gradOf(x, w);
    expect(maxDiff(g.slice([0], [1]), [want[0]!])).toBe(0);
    expect(maxDiff(g, want)).toBeGreaterThan(0.5);
    tf.dispose([x, w, g]);
  });

  it('after the fix equals the hand-computed 2x gradient at batch 1 and 3, square and not', () => {
    fixCpuResizeNearestNeighborGrad();
    fixCpuResizeNearestNeighborGrad(); // idempotent
    for (const [b, h, wd] of [
      [1, 4, 4],
      [3, 4, 5],
      [2, 3, 3],
    ] as const) {
      const x = tf.randomNormal([b, h, wd, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const w = tf.randomNormal([b, 2 * h, 2 * wd, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
      const g = gradOf(x, w);
      expect(maxDiff(g, handGrad2x(w.arraySync())), `${b}x${h}x${wd}`).toBeLessThan(1e-5);
      tf.dispose([x, w, g]);
    }
  });

  it('equals the gradient read off the forward pass for non-integer scales, alignCorners and halfPixelCenters', () => {
    fixCpuResizeNearestNeighborGrad();
    const [b, h, wd] = [2, 5, 4];
    for (const c of [
      { out: [7, 11], alignCorners: false, halfPixelCenters: false },
      { out: [7, 11], alignCorners: true, halfPixelCenters: false },
      { out: [9, 6], alignCorners: false, halfPixelCenters: true },
      { out: [3, 2], alignCorners: false, halfPixelCenters: false }, // downsampling
    ]) {
      // Resizing an image of pixel indices shows which input pixel each output pixel read; the gradient
      // is w scattered back onto those pixels.
      const ids = tf.range(0, b * h * wd).reshape([b, h, wd, 1]) as tf.Tensor4D;
      const src = tf.image
        .resizeNearestNeighbor(ids, [c.out[0]!, c.out[1]!], c.alignCorners, c.halfPixelCenters)
        .dataSync();
      const w = tf.randomNormal([b, c.out[0]!, c.out[1]!, 1], 0, 1, 'float32', 6) as tf.Tensor4D;
      const wv = w.dataSync();
      const want = new Float32Array(b * h * wd);
      src.forEach((s, i) => {
        want[s] += wv[i]!;
      });
      const x = tf.randomNormal([b, h, wd, 1], 0, 1, 'float32', 5) as tf.Tensor4D;
      const g = gradOf(x, w, c.alignCorners, c.halfPixelCenters);
      expect(maxDiff(g, tf.tensor4d(want, [b, h, wd, 1]).arraySync()), JSON.stringify(c)).toBeLessThan(1e-5);
      tf.dispose([ids, w, x, g]);
    }
  });
});
