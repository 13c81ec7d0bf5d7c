import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { GradientSum } from '../src/train/gradient-sum.js';

// Hand-computed weighted sums: the first add writes, later adds accumulate, flat slots are read in
// variable order, and toTensors divides (or not, for a denominator of 1).
describe('GradientSum', () => {
  const a = tf.variable(tf.zeros([2]), true, 'gs/a');
  const b = tf.variable(tf.zeros([3]), true, 'gs/b');

  it('sums weighted tensors and flat slots, then divides', () => {
    const sum = new GradientSum([a, b]);
    const g1 = { 'gs/a': tf.tensor([1, 2]), 'gs/b': tf.tensor([3, 4, 5]) };
    sum.add(g1, 2);
    sum.addFlat(new Float32Array([10, 20, 30, 40, 50]), 0.5);
    sum.add(g1, 1);
    const out = sum.toTensors(4);
    // a: (2*[1,2] + 0.5*[10,20] + [1,2]) / 4 = [8, 16] / 4; b: (2*[3,4,5] + 0.5*[30,40,50] + [3,4,5]) / 4
    expect(Array.from(out['gs/a']!.dataSync())).toEqual([2, 4]);
    expect(Array.from(out['gs/b']!.dataSync())).toEqual([6, 8, 10]);
    tf.dispose([out['gs/a']!, out['gs/b']!, g1['gs/a'], g1['gs/b']]);
  });

  it('starts from a flat slot as from a tensor, and a denominator of 1 leaves the sum as it is', () => {
    const sum = new GradientSum([a, b]);
    sum.addFlat(new Float32Array([1, 2, 3, 4, 5]), 0.25);
    sum.addFlat(new Float32Array([1, 2, 3, 4, 5]), 0.75);
    const out = sum.toTensors(1);
    expect(Array.from(out['gs/a']!.dataSync())).toEqual([1, 2]);
    expect(Array.from(out['gs/b']!.dataSync())).toEqual([3, 4, 5]);
    tf.dispose([out['gs/a']!, out['gs/b']!]);
  });
});
