import { boxCount, checkBoxes, InvalidInputError } from '@bmc/core';
import type { AssignInput } from './types.js';

/** Validated sizes plus per-level ranges, computed once per call. */
export interface CheckedInput {
  n: number;
  g: number;
  /** Number of classes `C`, 0 when no scores were given. */
  c: number;
  /** `[L + 1]` first anchor index of each level, then N. */
  levelStarts: Int32Array;
}

/** Throws an {@link InvalidInputError} naming the field and the problem. */
export function checkInput(name: string, input: AssignInput, needsPredictions: boolean): CheckedInput {
  const n = checkAnchors(name, input.anchors);
  const g = checkBoxes(input.gtBoxes, `${name}: gtBoxes`);
  if (input.gtLabels.length !== g) {
    throw new InvalidInputError(`${name}: gtLabels has ${input.gtLabels.length} entries for ${g} gtBoxes`);
  }
  for (let j = 0; j < g; j++) {
    const lab = input.gtLabels[j]!;
    if (!Number.isInteger(lab) || lab < 0) {
      throw new InvalidInputError(`${name}: gtLabels[${j}] = ${lab} is not a class index >= 0`);
    }
  }
  const levelStarts = levelStartsOf(name, input.levelCounts, n);
  let c = 0;
  if (needsPredictions) {
    if (!input.clsProbs || !input.predBoxes) {
      throw new InvalidInputError(
        `${name}: needs clsProbs [N, C] and predBoxes [N, 4] from the current forward pass`,
      );
    }
    if (boxCount(input.predBoxes, `${name}: predBoxes`) !== n) {
      throw new InvalidInputError(
        `${name}: predBoxes has ${input.predBoxes.length / 4} rows for ${n} anchors`,
      );
    }
    if (n > 0 && input.clsProbs.length % n !== 0) {
      throw new InvalidInputError(
        `${name}: clsProbs length ${input.clsProbs.length} is not N * C for N = ${n}`,
      );
    }
    c = n > 0 ? input.clsProbs.length / n : 0;
    for (let j = 0; j < g; j++) {
      if (input.gtLabels[j]! >= c) {
        throw new InvalidInputError(
          `${name}: gtLabels[${j}] = ${input.gtLabels[j]} but clsProbs has ${c} classes`,
        );
      }
    }
  }
  return { n, g, c, levelStarts };
}

// Anchors are the same array every training step (and cached as immutable by the anchor index):
// their finiteness is checked once per array.
const checkedAnchors = new WeakSet<object>();

function checkAnchors(name: string, anchors: AssignInput['anchors']): number {
  if (typeof anchors === 'object' && checkedAnchors.has(anchors)) return boxCount(anchors);
  const n = checkBoxes(anchors, `${name}: anchors`);
  if (typeof anchors === 'object') checkedAnchors.add(anchors);
  return n;
}

function levelStartsOf(name: string, counts: ArrayLike<number> | undefined, n: number): Int32Array {
  if (!counts) return Int32Array.of(0, n);
  const starts = new Int32Array(counts.length + 1);
  for (let l = 0; l < counts.length; l++) {
    const k = counts[l]!;
    if (!Number.isInteger(k) || k < 0)
      throw new InvalidInputError(`${name}: levelCounts[${l}] = ${k} is not a count`);
    starts[l + 1] = starts[l]! + k;
  }
  if (starts[counts.length] !== n) {
    throw new InvalidInputError(
      `${name}: levelCounts sum to ${starts[counts.length]} but there are ${n} anchors`,
    );
  }
  return starts;
}

/**
 * Throws when a row the assigner reads holds NaN or Infinity. Predictions are
 * checked only where they are used (a few thousand candidate rows rather than
 * all N x C values), which keeps validation off the per-step cost.
 */
export function checkRowsFinite(
  name: string,
  values: ArrayLike<number>,
  rows: ArrayLike<number>,
  stride: number,
  what: string,
): void {
  for (let r = 0; r < rows.length; r++) {
    const o = rows[r]! * stride;
    for (let k = 0; k < stride; k++) {
      const v = values[o + k]!;
      if (!Number.isFinite(v)) {
        throw new InvalidInputError(`${name}: ${what}: non-finite value ${v} at row ${rows[r]}, column ${k}`);
      }
    }
  }
}
