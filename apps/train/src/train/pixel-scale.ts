import { readFileSync } from 'node:fs';
import type { SampleSource } from '@bmc/data';
import type { PixelScale } from '@bmc/export';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../config/load.js';
import type { TrainConfig } from '../config/schema.js';

/** The pixel scale of a run and why it was chosen, for the log. */
export interface RunScale {
  scale: PixelScale;
  /** One line: the mode, the sizes that decided it. */
  description: string;
}

/** Median of the training images' longer sides (a sample of up to 2000 images: cheap for any dataset). */
function medianLongSide(source: SampleSource): number {
  const n = source.length;
  const step = Math.max(1, Math.floor(n / 2000));
  const sides: number[] = [];
  for (let i = 0; i < n; i += step) {
    const s = source.size(i);
    sides.push(Math.max(s.width, s.height));
  }
  sides.sort((a, b) => a - b);
  return sides[Math.floor(sides.length / 2)] ?? 0;
}

/**
 * How a run maps source pixels to network pixels: `data.sampling` with 'auto'
 * resolved from the training images (crops when their median longer side
 * exceeds `imageSize`: shrinking them would shrink the cells; letterbox
 * otherwise, which also keeps small images as they were handled before). The
 * decision depends only on the config and the training split, so training,
 * `bmc eval` and `bmc export` reach the same one.
 */
export function runPixelScale(
  data: Pick<TrainConfig['data'], 'sampling' | 'imageSize'>,
  train: SampleSource,
): RunScale {
  const size = data.imageSize;
  const median = medianLongSide(train);
  const crops = data.sampling === 'crops' || (data.sampling === 'auto' && median > size);
  const why =
    data.sampling === 'auto'
      ? `data.sampling auto: the training images' median longer side is ${median} px, ${crops ? 'above' : 'not above'} data.imageSize ${size}`
      : `data.sampling ${data.sampling}`;
  return crops
    ? {
        scale: { mode: 'native', crop: size },
        description: `sampling: ${size} px crops at source resolution (${why}); validation, test and bmc detect tile full images at the same scale`,
      }
    : {
        scale: { mode: 'letterbox', longSide: size },
        description: `sampling: letterbox, longer side resized to ${size} px (${why}); bmc detect resizes the same way`,
      };
}

/**
 * A run folder's config. Runs written before `data.sampling` existed letterboxed every
 * image (the only mode then); their config.yaml has no such key, and the default 'auto'
 * could pick crops for them, so they keep 'letterbox': `bmc eval`, `bmc export` and
 * `--resume` then scale images the way those runs trained.
 */
export function loadRunConfig(file: string): TrainConfig {
  const config = loadConfig({ file });
  const raw = parseYaml(readFileSync(file, 'utf8')) as { data?: { sampling?: unknown } } | null;
  if (raw?.data?.sampling !== undefined) return config;
  return { ...config, data: { ...config.data, sampling: 'letterbox' } };
}
