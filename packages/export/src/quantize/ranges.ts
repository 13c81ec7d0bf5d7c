/**
 * Activation ranges seen over the calibration images, and the quantisation
 * parameters that follow from them (onnxruntime's conventions, so that its QDQ
 * fusions apply: uint8 asymmetric activations, int8 symmetric weights).
 */

/** How a tensor's range is taken from the calibration images. */
export type CalibrationMethod = 'minmax' | 'percentile';
export const CALIBRATION_METHODS: readonly CalibrationMethod[] = ['minmax', 'percentile'];

/** The percentile (of each tail) the 'percentile' method keeps, per image; 99.99 as onnxruntime's default. */
export const DEFAULT_PERCENTILE = 99.99;

export interface Range {
  min: number;
  max: number;
}

/**
 * Accumulates per-tensor ranges, one image at a time.
 * - `minmax`: the smallest and largest value over all images (onnxruntime's
 *   MinMax calibrator); nothing seen is clipped.
 * - `percentile`: per image, the `percentile`-th largest and smallest values
 *   (a few outliers do not stretch the scale), averaged over the images; values
 *   beyond saturate. Averages over images rather than one histogram over all, so
 *   memory stays one tensor.
 */
export class RangeCollector {
  private readonly ranges = new Map<string, { min: number; max: number; sumLo: number; sumHi: number }>();
  images = 0;

  constructor(
    readonly method: CalibrationMethod = 'minmax',
    readonly percentile = DEFAULT_PERCENTILE,
  ) {
    if (!(percentile > 50 && percentile <= 100))
      throw new RangeError(`percentile must be in (50, 100], got ${percentile}`);
  }

  /** Adds one image's values of `tensor`. */
  add(tensor: string, values: Float32Array): void {
    let r = this.ranges.get(tensor);
    if (!r) this.ranges.set(tensor, (r = { min: Infinity, max: -Infinity, sumLo: 0, sumHi: 0 }));
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(Number.isFinite(lo) && Number.isFinite(hi)))
      throw new RangeError(`calibration: tensor '${tensor}' has non-finite values (NaN or infinity)`);
    r.min = Math.min(r.min, lo);
    r.max = Math.max(r.max, hi);
    if (this.method === 'percentile') {
      const [pLo, pHi] = tails(values, this.percentile);
      r.sumLo += pLo;
      r.sumHi += pHi;
    }
  }

  /** Marks the end of one calibration image. */
  endImage(): void {
    this.images++;
  }

  range(tensor: string): Range {
    const r = this.ranges.get(tensor);
    if (!r || this.images === 0) throw new Error(`calibration: no values seen for tensor '${tensor}'`);
    if (this.method === 'percentile') return { min: r.sumLo / this.images, max: r.sumHi / this.images };
    return { min: r.min, max: r.max };
  }
}

/** The `p`-th percentile of the low and high tail (nearest rank on a sorted copy). */
function tails(values: Float32Array, p: number): [number, number] {
  const sorted = Float32Array.from(values).sort();
  const n = sorted.length;
  const k = Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1));
  return [sorted[n - 1 - k]!, sorted[k]!];
}

/**
 * Round half to even, as ONNX QuantizeLinear rounds (numpy's `rint`), so the weights
 * quantised here match what QuantizeLinear would give for them.
 */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** uint8 asymmetric activation parameters. */
export interface ActivationParams {
  scale: number;
  zeroPoint: number;
}

/**
 * uint8 parameters for `range`, widened to include 0 so that 0 (zero padding,
 * ReLU's floor) is exact. A ReLU output gets zero point 0, so the QuantizeLinear
 * after the producing op does the ReLU's clamp and the ReLU node can go
 * (onnxruntime's ReluQuantFusion relies on the same identity).
 */
export function activationParams(range: Range): ActivationParams {
  const lo = Math.min(0, range.min);
  const hi = Math.max(0, range.max);
  if (!(hi > lo)) return { scale: 1, zeroPoint: 0 };
  const scale = (hi - lo) / 255;
  const zeroPoint = Math.min(255, Math.max(0, roundHalfEven(-lo / scale)));
  return { scale, zeroPoint };
}

/**
 * Per-output-channel symmetric int8 weights (`[Cout, ...]`, axis 0): scale
 * max|w| / 127, zero point 0, values in [-127, 127] (onnxruntime's symmetric
 * int8 range, which keeps -128 out so that negating a weight cannot overflow).
 */
export function quantizeWeightsPerChannel(
  w: Float32Array,
  outChannels: number,
): { data: Int8Array; scales: Float32Array } {
  const per = w.length / outChannels;
  if (!Number.isInteger(per))
    throw new RangeError(`weights of ${w.length} values for ${outChannels} channels`);
  const data = new Int8Array(w.length);
  const scales = new Float32Array(outChannels);
  for (let c = 0; c < outChannels; c++) {
    let m = 0;
    for (let i = c * per; i < (c + 1) * per; i++) m = Math.max(m, Math.abs(w[i]!));
    const s = m > 0 ? m / 127 : 1;
    scales[c] = s;
    for (let i = c * per; i < (c + 1) * per; i++)
      data[i] = Math.max(-127, Math.min(127, roundHalfEven(w[i]! / s)));
  }
  return { data, scales };
}

/**
 * int32 bias for a quantised conv: scale input scale x weight scale per channel
 * (the accumulator's scale, what QLinearConv adds it at), zero point 0.
 */
export function quantizeBias(
  b: Float32Array,
  inputScale: number,
  weightScales: Float32Array,
): { data: Int32Array; scales: Float32Array } {
  const data = new Int32Array(b.length);
  const scales = new Float32Array(b.length);
  for (let c = 0; c < b.length; c++) {
    // The DequantizeLinear of the bias multiplies in float32, so the scale is rounded to float32 first.
    const s = Math.fround(inputScale * weightScales[c]!);
    scales[c] = s;
    data[c] = Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, roundHalfEven(b[c]! / s)));
  }
  return { data, scales };
}
