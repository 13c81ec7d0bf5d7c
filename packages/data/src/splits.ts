import type { Dataset } from './dataset.js';
import { Rng } from './rng.js';

/** The images at `indices`, sharing the dataset's categories. */
export function subset(dataset: Dataset, indices: readonly number[]): Dataset {
  return {
    categories: dataset.categories,
    images: indices.map((i) => dataset.images[i]!),
    report: dataset.report,
  };
}

/**
 * Seeded random split by fractions, e.g. `{ train: 0.7, val: 0.2, test: 0.1 }`. Fractions are
 * normalised; rounding remainders go to the first split, so every image lands in exactly one.
 */
export function randomSplit<K extends string>(
  dataset: Dataset,
  fractions: Record<K, number>,
  seed: number,
): Record<K, Dataset> {
  const keys = Object.keys(fractions) as K[];
  const total = keys.reduce((s, k) => s + fractions[k], 0);
  if (!(total > 0) || keys.some((k) => !(fractions[k] >= 0))) {
    throw new RangeError(
      `randomSplit: fractions must be >= 0 with a positive sum, got ${JSON.stringify(fractions)}`,
    );
  }
  const n = dataset.images.length;
  const order = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  const sizes = keys.map((k) => Math.floor((n * fractions[k]) / total));
  sizes[0]! += n - sizes.reduce((s, x) => s + x, 0);
  const out = {} as Record<K, Dataset>;
  let at = 0;
  keys.forEach((k, i) => {
    out[k] = subset(
      dataset,
      order.slice(at, at + sizes[i]!).sort((a, b) => a - b),
    );
    at += sizes[i]!;
  });
  return out;
}
