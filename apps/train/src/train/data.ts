import { printable } from '@bmc/core';
import {
  type AugmentConfig,
  BatchLoader,
  type Dataset,
  datasetSource,
  mapCategories,
  type SampleSource,
  smearCategories,
  smearSource,
} from '@bmc/data';
import { readDataset } from '../commands/data.js';
import { ConfigError } from '../config/load.js';
import type { TrainConfig } from '../config/schema.js';
import type { JsonlLog } from '../run/jsonl-log.js';
import { autoSplit } from './data-checks.js';
import { type RunScale, runPixelScale } from './pixel-scale.js';

export interface Split {
  name: string;
  source: SampleSource;
  /** Category names in label order. */
  classes: string[];
  /** The dataset behind a file-based split (absent for synthetic data). */
  dataset?: Dataset;
  /**
   * The run's pixel scale (the same on every split: decided from the training images), which
   * training, evaluation and the exported model share.
   */
  scale: RunScale;
}

/** The first `n` samples of a source (all when n is 0). */
function firstOf(source: SampleSource, n: number): SampleSource {
  if (!(n > 0) || n >= source.length) return source;
  return { length: n, size: (i) => source.size(i), load: (i, w, h) => source.load(i, w, h) };
}

/**
 * Train / val / test sources for a config: the synthetic generator or a dataset on disk, cut
 * to `data.limit` images each, with the run's pixel scale (`data.sampling` resolved).
 */
export async function loadSplits(config: TrainConfig): Promise<{ train: Split; val: Split; test: Split }> {
  const raw = await readSplits(config);
  const cut = (s: Omit<Split, 'scale'>) => ({ ...s, source: firstOf(s.source, config.data.limit) });
  const train = cut(raw.train);
  const scale = runPixelScale(config.data, train.source);
  return { train: { ...train, scale }, val: { ...cut(raw.val), scale }, test: { ...cut(raw.test), scale } };
}

type RawSplits = Record<'train' | 'val' | 'test', Omit<Split, 'scale'>>;

async function readSplits(config: TrainConfig): Promise<RawSplits> {
  const d = config.data;
  if (d.format === 'synthetic') {
    const s = d.synthetic;
    const width = s.width ?? d.imageSize;
    const height = s.height ?? d.imageSize;
    const common = {
      seed: s.seed,
      width,
      height,
      // Fields larger than a crop are reused by many crops: keep their 8-bit pixels instead of
      // regenerating a 1920 x 1080 field (seconds) for every crop.
      cache: width * height > d.imageSize * d.imageSize,
      density: 0.3 * s.density,
      categories: config.data.classAgnostic ? ('cell' as const) : ('type' as const),
    };
    const classes = smearCategories(common.categories).map((c) => c.name);
    // Splits take consecutive generator indices, so no image appears in two splits.
    return {
      train: { name: 'train', classes, source: smearSource({ ...common, count: s.train, offset: 0 }) },
      val: { name: 'val', classes, source: smearSource({ ...common, count: s.val, offset: s.train }) },
      test: {
        name: 'test',
        classes,
        source: smearSource({ ...common, count: s.test, offset: s.train + s.val }),
      },
    };
  }
  if (!d.path) throw new ConfigError(`data.path: required for format '${d.format}'`);
  const read = async (split: string, path = d.path!): Promise<Omit<Split, 'scale'>> => {
    let ds = await readDataset(path, {
      format: d.format as 'coco' | 'voc' | 'yolo',
      split,
      policy: 'lenient',
      allowOutsideRoot: d.allowOutsideRoot,
    });
    if (d.classAgnostic) ds = mapCategories(ds, 'single');
    return { name: split, source: datasetSource(ds), classes: ds.categories.map((c) => c.name), dataset: ds };
  };
  if (d.format === 'coco') {
    const train = await read(d.trainSplit);
    if (d.valPath) {
      const val = await read(d.valSplit, d.valPath);
      return { train, val, test: val };
    }
    // Alone, the file is split (seeded) so validation and test never score training images.
    const parts = autoSplit(train.dataset!, d.autoSplit);
    const part = (name: string, ds: Dataset) => ({ ...train, name, source: datasetSource(ds), dataset: ds });
    return { train: part('train', parts.train), val: part('val', parts.val), test: part('test', parts.test) };
  }
  const train = await read(d.trainSplit);
  const val = await read(d.valSplit);
  // Exports often have no test split (Roboflow: train and valid only): test on validation then, and say so.
  const test = await read(d.testSplit).catch((e: Error) => {
    if (d.format !== 'yolo' || !e.message.includes(`split "${d.testSplit}" is not listed`)) throw e;
    process.stderr.write(
      `warning: ${d.path} has no "${d.testSplit}" split: test figures (bmc eval, the report) use "${d.valSplit}", which also picks best/\n`,
    );
    return val;
  });
  return { train, val, test };
}

/** The loader's augmentation for training, from the config's `data.augment` and the run's pixel scale. */
export function trainAugment(config: Pick<TrainConfig, 'data'>, scale: RunScale['scale']): AugmentConfig {
  const a = config.data.augment;
  const j = a.colorJitter;
  const crops = scale.mode === 'native';
  return {
    size: config.data.imageSize,
    ...(crops ? { sampling: 'crops' as const } : {}),
    scale: a.scale,
    crop: { minVisible: 0.5, ...(crops ? { onBox: a.cropOnCell } : {}) },
    hflip: a.hflip,
    vflip: a.vflip,
    ...(j > 0 ? { colorJitter: { brightness: j, contrast: j, saturation: j, hue: j / 5 } } : {}),
    ...(a.hed > 0 ? { hed: { sigma: a.hed, bias: a.hed } } : {}),
    normalize: true,
  };
}

export function trainLoader(
  config: Pick<TrainConfig, 'data' | 'optim'>,
  split: Split,
  seed: number,
  /** Where a training image that fails to decode is reported (it is skipped, see data.maxBadImageShare). */
  io?: { say: (line: string) => void; log: Pick<JsonlLog, 'write'> },
): BatchLoader {
  return new BatchLoader(split.source, {
    maxBadShare: config.data.maxBadImageShare,
    maxBadShareName: 'data.maxBadImageShare',
    onBadSample: (bad, failed) => {
      io?.say(printable(`warning: skipped ${bad.problem} (${failed} image(s) skipped so far)`));
      io?.log.write({ event: 'bad-image', ...bad, failed });
    },
    batchSize: config.optim.batchSize,
    augment: trainAugment(config, split.scale.scale),
    shuffle: true,
    seed,
    prefetch: 2,
    dropLast: split.source.length > config.optim.batchSize,
  });
}
