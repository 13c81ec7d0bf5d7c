import type { Rng } from '@bmc/data';

/**
 * Class-balanced sampling: `count` sample indices where every draw first picks a class uniformly,
 * then the next sample of that class from its own shuffled cycle (reshuffled when used up), so rare
 * classes are seen as often as common ones and every sample of a class before any repeats.
 */
export function balancedIndices(labels: ArrayLike<number>, rng: Rng, count: number): number[] {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!byClass.has(l)) byClass.set(l, []);
    byClass.get(l)!.push(i);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  if (classes.length === 0) return [];
  const cursor = new Map<number, number>();
  const pools = new Map<number, number[]>();
  const out: number[] = [];
  for (let n = 0; n < count; n++) {
    const c = classes[rng.int(0, classes.length - 1)]!;
    let pos = cursor.get(c) ?? 0;
    let pool = pools.get(c);
    if (!pool || pos >= pool.length) {
      pool = shuffle(byClass.get(c)!.slice(), rng);
      pools.set(c, pool);
      pos = 0;
    }
    out.push(pool[pos]!);
    cursor.set(c, pos + 1);
  }
  return out;
}

export function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

export interface Split {
  train: number[];
  val: number[];
  test: number[];
}

/**
 * Stratified, seeded split: within each class the samples are shuffled and the first
 * `round(n * test)` go to test, the next `round(n * val)` to validation, the rest to training.
 */
export function stratifiedSplit(labels: ArrayLike<number>, rng: Rng, val: number, test: number): Split {
  if (!(val >= 0 && test >= 0 && val + test < 1))
    throw new RangeError(`stratifiedSplit: bad fractions val ${val}, test ${test}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (!byClass.has(l)) byClass.set(l, []);
    byClass.get(l)!.push(i);
  }
  const split: Split = { train: [], val: [], test: [] };
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = shuffle(byClass.get(c)!, rng);
    const nt = Math.round(idx.length * test);
    const nv = Math.round(idx.length * val);
    split.test.push(...idx.slice(0, nt));
    split.val.push(...idx.slice(nt, nt + nv));
    split.train.push(...idx.slice(nt + nv));
  }
  return split;
}
