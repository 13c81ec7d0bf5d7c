import { type CellClassifier, type Detector, loadCellClassifier, loadDetector } from '@bmc/infer';
import type { BatchManifest } from './batch.js';
import { classifierInfo, modelVersion } from './detect-images.js';

/** Which models propose a batch (`bmc label propose` and `bmc label rank` alike). */
export interface LabelModelOptions {
  /** The detector's ONNX file. */
  model: string;
  threads?: number;
  /** A cell-type classifier (`bmc classify export`): each proposal is labelled with its type. */
  classifier?: string;
  /** Below this best-type probability a proposal is `unclassified`. Default 0.5 (as bmc detect). */
  classifierThreshold?: number;
}

/** Loads the detector and, when asked for, the classifier; both are disposed once `use` settles. */
export async function withLabelModels<T>(
  o: LabelModelOptions,
  use: (detector: Detector, classifier: CellClassifier | undefined) => Promise<T>,
): Promise<T> {
  const detector = await loadDetector(o.model, o.threads ? { threads: o.threads } : {});
  let classifier: CellClassifier | undefined;
  try {
    if (o.classifier)
      classifier = await loadCellClassifier(o.classifier, o.classifierThreshold ?? 0.5, o.threads);
    return await use(detector, classifier);
  } finally {
    await classifier?.dispose();
    await detector.dispose();
  }
}

/** What batch.json records of the models that proposed the boxes and the threshold they were cut at. */
export async function batchModels(
  model: string,
  detector: Detector,
  threshold: number,
  classifier: CellClassifier | undefined,
): Promise<Pick<BatchManifest, 'model' | 'modelVersion' | 'threshold' | 'classifier'>> {
  return {
    model,
    modelVersion: await modelVersion(model, detector.meta.version),
    threshold,
    ...(classifier ? { classifier: await classifierInfo(classifier) } : {}),
  };
}
