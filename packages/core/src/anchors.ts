import type { BoxesXYXY } from './types.js';

/** One pyramid level's anchor settings. */
export interface AnchorLevel {
  /** Pixel distance between neighbouring anchor centres (the feature map's stride). */
  stride: number;
  /** Anchor side lengths (square-root of the area) for this level, one per scale. */
  sizes: readonly number[];
}

export interface AnchorConfig {
  levels: readonly AnchorLevel[];
  /** Height/width ratios, the same on every level. */
  aspectRatios: readonly number[];
  /**
   * Round the base (cell-centred) anchors to whole pixels, as torchvision's
   * `AnchorGenerator` does. Default true so that anchors equal torchvision's.
   */
  roundBase?: boolean;
}

/**
 * The anchors of a feature pyramid, in the order every flattened head output
 * uses: level, then row y, then column x, then anchor (ratio-major: for each
 * aspect ratio, each size), matching torchvision.
 */
export interface Anchors {
  /** `[N, 4]` xyxy boxes in input pixels. */
  boxes: BoxesXYXY;
  /** Anchors per level (`sum === N`), in level order. */
  levelCounts: Int32Array;
  /** Feature-map size `[h, w]` of each level. */
  featureSizes: Array<[number, number]>;
  /** Anchors per feature-map location. */
  perLocation: number;
}

/** Octave scales 2^0, 2^(1/3), 2^(2/3): three sizes per level as in RetinaNet. */
export const RETINANET_OCTAVE_SCALES = [1, 2 ** (1 / 3), 2 ** (2 / 3)] as const;
export const RETINANET_ASPECT_RATIOS = [0.5, 1, 2] as const;

/**
 * Per-level sizes `base * scale`, truncated to integers as torchvision's
 * RetinaNet builds them (`int(x * 2 ** (1/3))`), so the presets equal its anchors.
 */
export function octaveSizes(baseSize: number, scales: readonly number[] = RETINANET_OCTAVE_SCALES): number[] {
  return scales.map((s) => Math.trunc(baseSize * s));
}

/** Classic RetinaNet: P3-P7 (strides 8..128), base sizes 32..512. */
export function retinanetAnchorConfig(): AnchorConfig {
  return {
    levels: [8, 16, 32, 64, 128].map((stride) => ({ stride, sizes: octaveSizes(4 * stride) })),
    aspectRatios: RETINANET_ASPECT_RATIOS,
  };
}

/**
 * bmc's thesis preset: heads on N2-N5 (strides 4..32), keeping RetinaNet's
 * "base size = 4 x stride" rule: base sizes 16, 32, 64, 128. At 512x512 this is
 * 195,840 anchors.
 */
export function panN2N5AnchorConfig(): AnchorConfig {
  return {
    levels: [4, 8, 16, 32].map((stride) => ({ stride, sizes: octaveSizes(4 * stride) })),
    aspectRatios: RETINANET_ASPECT_RATIOS,
  };
}

/** Base anchors `[A, 4]` centred on (0, 0) for one level. */
export function baseAnchors(sizes: readonly number[], ratios: readonly number[], round = true): Float32Array {
  const out = new Float32Array(sizes.length * ratios.length * 4);
  let k = 0;
  for (const ratio of ratios) {
    const hRatio = Math.sqrt(ratio);
    const wRatio = 1 / hRatio;
    for (const size of sizes) {
      // Computed in float32 as torchvision does, so rounding lands on the same side.
      const w = Math.fround(Math.fround(wRatio) * size);
      const h = Math.fround(Math.fround(hRatio) * size);
      const r = round ? roundHalfEven : (v: number) => v;
      out[k++] = r(-w / 2);
      out[k++] = r(-h / 2);
      out[k++] = r(w / 2);
      out[k++] = r(h / 2);
    }
  }
  return out;
}

/**
 * Feature-map size of a level: ceil(input / stride), which is what a stride-2
 * conv chain with 'same' padding gives. Anchors use the configured stride even
 * when the input is not a multiple of it; torchvision instead derives the stride
 * as `input // feature_size` (96 px at P6 gives 48), so the two agree exactly
 * only for inputs that are multiples of the coarsest stride.
 */
export function featureSize(inputSize: number, stride: number): number {
  return Math.ceil(inputSize / stride);
}

/** All anchors for an input of `height x width` pixels. */
export function generateAnchors(config: AnchorConfig, height: number, width: number): Anchors {
  if (!(height > 0 && width > 0)) throw new RangeError(`generateAnchors: bad input size ${height}x${width}`);
  const round = config.roundBase ?? true;
  const perLocation = config.levels[0] ? config.levels[0].sizes.length * config.aspectRatios.length : 0;
  const featureSizes: Array<[number, number]> = [];
  const levelCounts = new Int32Array(config.levels.length);
  let total = 0;
  config.levels.forEach((level, l) => {
    if (level.sizes.length * config.aspectRatios.length !== perLocation) {
      throw new RangeError('generateAnchors: every level needs the same number of anchors per location');
    }
    const fh = featureSize(height, level.stride);
    const fw = featureSize(width, level.stride);
    featureSizes.push([fh, fw]);
    levelCounts[l] = fh * fw * perLocation;
    total += levelCounts[l]!;
  });
  const boxes = new Float32Array(total * 4);
  let k = 0;
  config.levels.forEach((level, l) => {
    const base = baseAnchors(level.sizes, config.aspectRatios, round);
    const [fh, fw] = featureSizes[l]!;
    for (let y = 0; y < fh; y++) {
      const sy = y * level.stride;
      for (let x = 0; x < fw; x++) {
        const sx = x * level.stride;
        for (let a = 0; a < base.length; a += 4) {
          boxes[k++] = sx + base[a]!;
          boxes[k++] = sy + base[a + 1]!;
          boxes[k++] = sx + base[a + 2]!;
          boxes[k++] = sy + base[a + 3]!;
        }
      }
    }
  });
  return { boxes, levelCounts, featureSizes, perLocation };
}

/** torch.round rounds half to even. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
