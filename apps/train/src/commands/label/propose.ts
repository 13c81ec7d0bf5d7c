import { countingThreshold, decodeToPixels, expandInputs } from '@bmc/infer';
import { type BatchManifest, type ProposalFormat, writeBatch } from './batch.js';
import { addCellTypes, detectImages, proposalDataset } from './detect-images.js';
import { batchModels, type LabelModelOptions, withLabelModels } from './label-models.js';

export interface ProposeOptions extends LabelModelOptions {
  inputs: string[];
  out: string;
  formats: ProposalFormat[];
  /** Counting threshold override; default: the model's operating point. */
  scoreThreshold?: number;
  /** Label Studio `data.image` paths are relative to this folder (its LOCAL_FILES_DOCUMENT_ROOT). */
  labelStudioRoot?: string;
  log?: (line: string) => void;
}

/**
 * `bmc label propose`: the detector's boxes at its counting threshold (the operating point, so a
 * person deletes few false boxes and draws few missed ones) written as pre-labels in the chosen
 * formats, one batch folder.
 */
export async function propose(o: ProposeOptions): Promise<BatchManifest> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const files = await expandInputs(o.inputs);
  return withLabelModels(o, async (detector, classifier) => {
    const counting = countingThreshold(detector.meta, o.scoreThreshold);
    log(
      `proposing boxes with score >= ${counting.scoreThreshold.toFixed(3)} (${counting.source}) on ${files.length} images`,
    );
    const found = await detectImages(detector, files, { decode: decodeToPixels });
    const { failed } = found;
    for (const f of failed) log(`skipped ${f.file}: ${f.error}`);
    const images = classifier
      ? await addCellTypes(found.images, classifier, counting.scoreThreshold, decodeToPixels)
      : found.images;
    const ds = proposalDataset(
      images,
      detector.meta.classNames,
      counting.scoreThreshold,
      classifier?.classNames,
    );
    return await writeBatch(
      o.out,
      ds,
      o.formats,
      {
        ...(await batchModels(o.model, detector, counting.scoreThreshold, classifier)),
        selection: 'all',
        images: ds.images.map((im, i) => ({
          name: im.file.split(/[\\/]/).pop()!,
          file: images[i]!.file,
          proposals: im.labels.length,
        })),
        failed,
      },
      o.labelStudioRoot ? { labelStudioRoot: o.labelStudioRoot } : {},
    );
  });
}
