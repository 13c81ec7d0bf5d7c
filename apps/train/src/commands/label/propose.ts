import {
  type CellClassifier,
  countingThreshold,
  type Detector,
  decodeToPixels,
  expandInputs,
  loadCellClassifier,
  loadDetector,
} from '@bmc/infer';
import { type BatchManifest, type ProposalFormat, writeBatch } from './batch.js';
import {
  addCellTypes,
  classifierInfo,
  detectImages,
  modelVersion,
  proposalDataset,
} from './detect-images.js';

export interface ProposeOptions {
  model: string;
  inputs: string[];
  out: string;
  formats: ProposalFormat[];
  /** Counting threshold override; default: the model's operating point. */
  scoreThreshold?: number;
  /** Label Studio `data.image` paths are relative to this folder (its LOCAL_FILES_DOCUMENT_ROOT). */
  labelStudioRoot?: string;
  threads?: number;
  /** A cell-type classifier (`bmc classify export`): each proposal is labelled with its type. */
  classifier?: string;
  /** Below this best-type probability a proposal is `unclassified`. Default 0.5 (as bmc detect). */
  classifierThreshold?: number;
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
  const detector: Detector = await loadDetector(o.model, o.threads ? { threads: o.threads } : {});
  let classifier: CellClassifier | undefined;
  try {
    if (o.classifier)
      classifier = await loadCellClassifier(o.classifier, o.classifierThreshold ?? 0.5, o.threads);
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
        model: o.model,
        modelVersion: await modelVersion(o.model, detector.meta.version),
        threshold: counting.scoreThreshold,
        ...(classifier ? { classifier: await classifierInfo(classifier) } : {}),
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
  } finally {
    await classifier?.dispose();
    await detector.dispose();
  }
}
