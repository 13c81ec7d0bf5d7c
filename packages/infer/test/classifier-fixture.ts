import { writeFile } from 'node:fs/promises';
import { buildClassifier } from '@bmc/classify';
import { exportOnnx } from '@bmc/export';

/**
 * An untrained cell-type classifier (seeded weights, 32 px crops, 1/16 of ResNet18's widths) written
 * to `file` with the metadata `bmc classify export` records. Run on tfjs's current backend.
 */
export async function writeUntrainedClassifier(file: string, classNames: string[]): Promise<void> {
  const model = buildClassifier({
    numClasses: classNames.length,
    cropSize: 32,
    widthMultiplier: 0.0625,
    seed: 3,
  });
  const meta = { classNames, cropSize: 32, margin: 0.15 };
  await writeFile(
    file,
    exportOnnx(model, {
      inputNames: ['crops'],
      outputNames: ['logits'],
      metadata: { bmc_classifier: JSON.stringify(meta) },
    }).bytes,
  );
  model.dispose();
}
