/** Small deterministic PRNG (mulberry32): uniform [0, 1). */
export function mulberry32(seed: number): () => number;
/** Readers for the `fixtures/` folder next to the calling test file. */
export function fixtures(importMetaUrl: string): {
  dir: string;
  json: <T = unknown>(name: string) => T;
  bytes: (name: string) => Uint8Array;
};
/** max |a - b| / max |b|. */
export function relativeMaxDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number;
