/** Frames-per-second measurement of any predict function (framework-free). */
export interface FpsResult {
  /** 1000 / medianMs. */
  fps: number;
  medianMs: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  /** Every timed run, ms, in run order. */
  timesMs: number[];
  warmup: number;
}

export interface FpsOptions {
  /** Untimed runs first (JIT, kernel compilation, weight upload); default 3. */
  warmup?: number;
  /** Timed runs; default 20. */
  runs?: number;
  /** Clock in ms; default `performance.now`. */
  now?: () => number;
}

/**
 * Times `predict` (one image, batch 1) `runs` times after `warmup` untimed calls and
 * reports FPS from the median, which is robust to the odd GC pause. `predict` may be
 * async; it is awaited, so a tfjs caller should read its outputs (`await t.data()`)
 * inside `predict` to include the device sync in the time.
 */
export async function measureFps(predict: () => unknown, options: FpsOptions = {}): Promise<FpsResult> {
  const warmup = options.warmup ?? 3;
  const runs = options.runs ?? 20;
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`measureFps: runs must be >= 1, got ${runs}`);
  const now = options.now ?? (() => performance.now());
  for (let i = 0; i < warmup; i++) await predict();
  const timesMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    await predict();
    timesMs.push(now() - t0);
  }
  const sorted = [...timesMs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianMs = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return {
    fps: medianMs > 0 ? 1000 / medianMs : Number.POSITIVE_INFINITY,
    medianMs,
    meanMs: timesMs.reduce((s, v) => s + v, 0) / runs,
    minMs: sorted[0]!,
    maxMs: sorted[sorted.length - 1]!,
    timesMs,
    warmup,
  };
}
