import type { Dataset } from './dataset.js';

export type CategoryMode = 'keep' | 'single';

/**
 * `keep` returns the dataset unchanged; `single` collapses every class to one foreground
 * category (the published detector is class-agnostic: find cells, classify them later).
 */
export function mapCategories(dataset: Dataset, mode: CategoryMode, name = 'cell'): Dataset {
  if (mode === 'keep') return dataset;
  return {
    categories: [{ id: 1, name }],
    images: dataset.images.map((img) => ({ ...img, labels: new Int32Array(img.labels.length) })),
    report: dataset.report,
  };
}

/** Merges or renames categories by name: `{ Platelets: 'PLT' }`; unlisted names are kept. */
export function renameCategories(dataset: Dataset, rename: Record<string, string>): Dataset {
  const names: string[] = [];
  const remap = dataset.categories.map((c) => {
    const n = rename[c.name] ?? c.name;
    let i = names.indexOf(n);
    if (i < 0) i = names.push(n) - 1;
    return i;
  });
  return {
    categories: names.map((name, i) => ({ id: i + 1, name })),
    images: dataset.images.map((img) => ({ ...img, labels: img.labels.map((l) => remap[l]!) })),
    report: dataset.report,
  };
}
