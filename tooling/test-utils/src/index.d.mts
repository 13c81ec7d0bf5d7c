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
/** A fixture array as the Python fixture scripts write it. */
export interface ArrayFixture {
  shape: number[];
  data: number[];
}
/** Fixture readers next to the calling test file, and a switch to tfjs's cpu backend. */
export function networkTestHelpers(
  importMetaUrl: string,
  tf: { setBackend(name: string): Promise<boolean>; ready(): Promise<void> },
): {
  FIXTURES: string;
  readJson: <T = unknown>(name: string) => T;
  readBytes: (name: string) => Uint8Array;
  useCpu: () => Promise<void>;
};
