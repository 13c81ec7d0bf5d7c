import type { NumericArray } from './types.js';

/** Raised for inputs that would silently poison results: NaN/Infinity, ragged box arrays. */
export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
}

/** Number of boxes in a `[N, 4]` array; throws when the length is not a multiple of 4. */
export function boxCount(boxes: NumericArray, what = 'boxes'): number {
  if (boxes.length % 4 !== 0) {
    throw new InvalidInputError(`${what}: length ${boxes.length} is not a multiple of 4 (expected [N, 4])`);
  }
  return boxes.length / 4;
}

/**
 * Throws when any value is NaN or +-Infinity, naming the array and the first bad
 * index, so a diverging loss is caught where it enters rather than as an empty
 * detection list far downstream.
 */
export function assertFinite(values: NumericArray, what: string, stride = 1): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) {
      const where = stride > 1 ? `row ${Math.floor(i / stride)}, column ${i % stride}` : `index ${i}`;
      throw new InvalidInputError(`${what}: non-finite value ${v} at ${where}`);
    }
  }
}

/** `boxCount` plus `assertFinite` for a `[N, 4]` box array. */
export function checkBoxes(boxes: NumericArray, what = 'boxes'): number {
  const n = boxCount(boxes, what);
  assertFinite(boxes, what, 4);
  return n;
}
