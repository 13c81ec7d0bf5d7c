import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { registerFastWasmTile } from '../src/wasm-tile.js';

describe('Tile on wasm by block copies', () => {
  it('equals the cpu backend for ranks 1-4, int32 and bool, reps of 1 included; hand-computed case', async () => {
    const cases: Array<[number[], number[], tf.DataType]> = [
      [[3], [4], 'float32'],
      [[2, 3], [3, 1], 'int32'],
      [[1, 1, 5], [4, 6, 1], 'float32'],
      [[2, 1, 3, 2], [1, 3, 2, 2], 'float32'],
      [[2, 2], [2, 3], 'bool'],
      [[3, 2], [1, 1], 'float32'],
    ];
    const values = (shape: number[], dtype: tf.DataType) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return Array.from({ length: n }, (_, i) =>
        dtype === 'bool' ? i % 2 : dtype === 'int32' ? i * 7 - 3 : i * 0.5 - 1,
      );
    };
    const compute = () =>
      cases.map(([shape, reps, dtype]) =>
        tf.tidy(() => Array.from(tf.tile(tf.tensor(values(shape, dtype), shape, dtype), reps).dataSync())),
      );
    await tf.setBackend('cpu');
    const expected = compute();
    expect(expected[0]).toEqual([-1, -0.5, 0, -1, -0.5, 0, -1, -0.5, 0, -1, -0.5, 0]);
    await tf.setBackend('wasm');
    registerFastWasmTile();
    registerFastWasmTile(); // idempotent
    const n = tf.memory().numTensors;
    expect(compute()).toEqual(expected);
    expect(tf.memory().numTensors).toBe(n);
    await tf.setBackend('cpu');
  });
});
