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

export interface Split {
  name: string;
  source: SampleSource;
  /** Category names in label order. */
  classes: string[];
  /** The dataset behind a file-based split (absent for synthetic data). */
  dataset?: Dataset;
}

/** Train / val / test sources for a config: the synthetic generator or a dataset on disk. */
export async function loadSplits(config: TrainConfig): Promise<{ train: Split; val: Split; test: Split }> {
  const d = config.data;
  if (d.format === 'synthetic') {
    const s = d.synthetic;
    const common = {
      seed: s.seed,
      width: d.imageSize,
      height: d.imageSize,
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
  const read = async (split: string, path = d.path!): Promise<Split> => {
    let ds = await readDataset(path, {
      format: d.format as 'coco' | 'voc' | 'yolo',
      split,
      policy: 'lenient',
    });
    if (d.classAgnostic) ds = mapCategories(ds, 'single');
    return { name: split, source: datasetSource(ds), classes: ds.categories.map((c) => c.name), dataset: ds };
  };
  if (d.format === 'coco') {
    const train = await read(d.trainSplit);
    const val = d.valPath ? await read(d.valSplit, d.valPath) : train;
    return { train, val, test: val };
  }
  return { train: await read(d.trainSplit), val: await read(d.valSplit), test: await read(d.testSplit) };
}

/** The loader's augmentation for training, from the config's `data.augment`. */
export function trainAugment(config: Pick<TrainConfig, 'data'>): AugmentConfig {
  const a = config.data.augment;
  const j = a.colorJitter;
  return {
    size: config.data.imageSize,
    scale: a.scale,
    crop: { minVisible: 0.5 },
    hflip: a.hflip,
    vflip: a.vflip,
    ...(j > 0 ? { colorJitter: { brightness: j, contrast: j, saturation: j, hue: j / 5 } } : {}),
    ...(a.hed > 0 ? { hed: { sigma: a.hed, bias: a.hed } } : {}),
    normalize: true,
  };
}

/** Evaluation: letterbox (resize the longer side, pad right/bottom) and normalise only. */
export function evalAugment(config: Pick<TrainConfig, 'data'>): AugmentConfig {
  return { size: config.data.imageSize, normalize: true };
}

export function trainLoader(
  config: Pick<TrainConfig, 'data' | 'optim'>,
  split: Split,
  seed: number,
): BatchLoader {
  return new BatchLoader(split.source, {
    batchSize: config.optim.batchSize,
    augment: trainAugment(config),
    shuffle: true,
    seed,
    prefetch: 2,
    dropLast: split.source.length > config.optim.batchSize,
  });
}

export function evalLoader(config: Pick<TrainConfig, 'data'>, split: Split, batchSize = 4): BatchLoader {
  return new BatchLoader(split.source, {
    batchSize,
    augment: evalAugment(config),
    shuffle: false,
    prefetch: 1,
  });
}
