// Test-only helpers shared across packages (plain JS so no build step is needed).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Small deterministic PRNG (mulberry32): uniform [0, 1), so random cases reproduce. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Readers for the `fixtures/` folder next to the calling test file (`import.meta.url`). */
export function fixtures(importMetaUrl) {
  const dir = join(dirname(fileURLToPath(importMetaUrl)), 'fixtures');
  return {
    dir,
    json: (name) => JSON.parse(readFileSync(join(dir, name), 'utf8')),
    bytes: (name) => new Uint8Array(readFileSync(join(dir, name))),
  };
}

/**
 * What the network packages' tests share: their fixture readers, and a switch to tfjs's cpu backend
 * (the reference backend for parity). `tf` is the caller's tfjs, so this package needs none.
 */
export function networkTestHelpers(importMetaUrl, tf) {
  const fx = fixtures(importMetaUrl);
  return {
    FIXTURES: fx.dir,
    readJson: fx.json,
    readBytes: fx.bytes,
    useCpu: async () => {
      await tf.setBackend('cpu');
      await tf.ready();
    },
  };
}

/** max |a - b| / max |b|: parity tolerances relative to the reference's scale. */
export function relativeMaxDiff(actual, expected) {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} != ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / Math.max(scale, 1e-12);
}
