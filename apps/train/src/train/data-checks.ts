import { InputError, printable } from '@bmc/core';
import { type Dataset, randomSplit } from '@bmc/data';
import type { TrainConfig } from '../config/schema.js';
import type { JsonlLog } from '../run/jsonl-log.js';

type Splits<S> = { train: S; val: S; test: S };

/**
 * A COCO JSON given alone split into train / val / test (`data.autoSplit`: shares and seed), so
 * that validation and test never score training images. Image order within each part is kept.
 */
export function autoSplit(dataset: Dataset, cfg: TrainConfig['data']['autoSplit']): Splits<Dataset> {
  const { val, test, seed } = cfg;
  return randomSplit(dataset, { train: 1 - val - test, val, test }, seed);
}

/** The sentence the log and the report carry about an automatic split (undefined when there is none). */
export function describeAutoSplit(d: TrainConfig['data'], sizes: Splits<number>): string | undefined {
  if (d.format !== 'coco' || d.valPath) return undefined;
  const { val, test, seed } = d.autoSplit;
  return (
    `${d.path} was given alone: split at random (seed ${seed}, val ${val}, test ${test}) into ` +
    `${sizes.train} training, ${sizes.val} validation and ${sizes.test} test images (data.autoSplit)`
  );
}

interface SplitLike {
  name: string;
  source: { length: number };
  dataset?: Dataset;
}

/**
 * What reading the data changed, said once per split with counts (stdout and a `data-problems`
 * JSONL event), and the refusal of a split with nothing to learn from or score on: no images, or
 * (training) no boxes. The refusal is bad input (exit 2) naming the split and the path.
 */
export function checkSplits(
  splits: Splits<SplitLike>,
  config: TrainConfig,
  io: { say: (line: string) => void; log: Pick<JsonlLog, 'write'> },
): void {
  const d = config.data;
  const where = d.path ?? `synthetic (seed ${d.synthetic.seed})`;
  const auto = describeAutoSplit(d, {
    train: splits.train.source.length,
    val: splits.val.source.length,
    test: splits.test.source.length,
  });
  if (auto) {
    io.say(printable(auto));
    io.log.write({ event: 'data-split', description: auto, seed: d.autoSplit.seed });
  }
  const seen = new Set<Dataset>();
  for (const split of [splits.train, splits.val, splits.test]) {
    const ds = split.dataset;
    if (ds && !seen.has(ds)) {
      seen.add(ds);
      const count = (action: string) => ds.report.issues.filter((i) => i.action === action).length;
      const dropped = count('dropped-box');
      const clipped = count('clipped');
      const droppedImages = count('dropped-image');
      if (dropped + clipped + droppedImages > 0) {
        io.say(
          printable(
            `warning: ${split.name} data (${where}): ${dropped} box(es) dropped, ${clipped} clipped, ` +
              `${droppedImages} image(s) dropped as invalid; \`bmc data check ${where}\` lists each`,
          ),
        );
        io.log.write({
          event: 'data-problems',
          split: split.name,
          path: where,
          droppedBoxes: dropped,
          clippedBoxes: clipped,
          droppedImages,
          examples: ds.report.issues.slice(0, 5),
        });
      }
    }
    if (split.source.length === 0)
      throw new InputError(
        `the ${split.name} split of ${where} has no images: nothing to train or score on`,
        d.path,
      );
    if (split === splits.train && ds && ds.images.every((im) => im.labels.length === 0))
      throw new InputError(`the ${split.name} split of ${where} has no boxes: nothing to learn from`, d.path);
  }
}
