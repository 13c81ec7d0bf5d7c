import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UsageError } from '@bmc/core';
import { countingThreshold, decodeToPixels, expandInputs } from '@bmc/infer';
import { acquisition, pickDiverse, pickRandom } from './acquisition.js';
import { type BatchManifest, type ProposalFormat, writeBatch } from './batch.js';
import { addCellTypes, detectImages, evidenceOf, proposalDataset } from './detect-images.js';
import { batchModels, type LabelModelOptions, withLabelModels } from './label-models.js';
import { LEDGER_FILE, readLedger, writeLedger } from './ledger.js';

export interface RankOptions extends LabelModelOptions {
  /** Folders / files / globs of smears; the labelled ones (in the dataset's ledger) are skipped. */
  inputs: string[];
  /** The growing dataset folder (its ledger says what is labelled already). */
  dataset?: string;
  top: number;
  out: string;
  formats: ProposalFormat[];
  strategy: 'rank' | 'random';
  seed?: number;
  /** Weight of the diversity penalty (0: plain top-N by score). */
  diversity?: number;
  scoreThreshold?: number;
  labelStudioRoot?: string;
  log?: (line: string) => void;
}

/**
 * `bmc label rank`: scores every unlabelled image (see acquisition.ts: uncertainty about the count
 * near the threshold plus disagreement with the mirrored image, with a diversity penalty) and
 * writes the top N as the next batch folder, with the proposals as pre-labels and each image's
 * score terms in batch.json. `random` picks N at random (the baseline).
 */
export async function rank(o: RankOptions): Promise<BatchManifest & { ranking: string }> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!(o.top >= 1)) throw new UsageError(`--top ${o.top}: at least 1`);
  const ledger =
    o.dataset && existsSync(join(o.dataset, LEDGER_FILE)) ? await readLedger(o.dataset) : undefined;
  const all = await expandInputs(o.inputs);
  const files = all.filter((f) => !(ledger && basename(f) in ledger.images));
  log(`${all.length} images, ${all.length - files.length} labelled already, ${files.length} to rank`);
  if (files.length === 0) throw new UsageError('no unlabelled images left to rank');
  return withLabelModels(o, async (detector, classifier) => {
    const t = countingThreshold(detector.meta, o.scoreThreshold).scoreThreshold;
    let chosen: number[];
    let images: Awaited<ReturnType<typeof detectImages>>['images'];
    let failed: { file: string; error: string }[];
    let terms: ReturnType<typeof acquisition>[] = [];
    if (o.strategy === 'random') {
      const order = pickRandom(files.length, o.top, o.seed ?? 1);
      ({ images, failed } = await detectImages(
        detector,
        order.map((i) => files[i]!),
        { decode: decodeToPixels },
      ));
      chosen = images.map((_, i) => i);
    } else {
      ({ images, failed } = await detectImages(detector, files, { decode: decodeToPixels, flip: true }));
      terms = images.map((im) => acquisition(evidenceOf(im), t));
      chosen = pickDiverse(
        terms.map((x, i) => ({ score: x.score, count: x.count, histogram: images[i]!.histogram })),
        o.top,
        o.diversity ?? 0.5,
      );
    }
    for (const f of failed) log(`skipped ${f.file}: ${f.error}`);
    let picked = chosen.map((i) => images[i]!);
    // Types only for the batch: the ranking itself does not look at them.
    if (classifier) picked = await addCellTypes(picked, classifier, t, decodeToPixels);
    const ds = proposalDataset(picked, detector.meta.classNames, t, classifier?.classNames);
    const manifest = await writeBatch(
      o.out,
      ds,
      o.formats,
      {
        ...(await batchModels(o.model, detector, t, classifier)),
        selection: o.strategy,
        images: chosen.map((i, k) => ({
          name: basename(images[i]!.file),
          file: images[i]!.file,
          proposals: ds.images[k]!.labels.length,
          ...(terms.length
            ? {
                acquisition: {
                  score: terms[i]!.score,
                  uncertainty: terms[i]!.uncertainty,
                  disagreement: terms[i]!.disagreement,
                },
              }
            : {}),
        })),
        failed,
      },
      o.labelStudioRoot ? { labelStudioRoot: o.labelStudioRoot } : {},
    );
    if (ledger && o.dataset) {
      // Remember the pool, so `bmc label status` can count what is left.
      const pool = new Set([...ledger.pool, ...o.inputs.map((p) => resolve(p))]);
      ledger.pool = [...pool];
      await writeLedger(resolve(o.dataset), ledger);
    }
    const ranking = manifest.images
      .map(
        (im, k) =>
          `${String(k + 1).padStart(4)}  ${im.name}  ${im.proposals} cells` +
          (im.acquisition
            ? `  score ${im.acquisition.score.toFixed(3)} (uncertainty ${im.acquisition.uncertainty.toFixed(3)}, flip ${im.acquisition.disagreement.toFixed(3)})`
            : ''),
      )
      .join('\n');
    return { ...manifest, ranking };
  });
}
