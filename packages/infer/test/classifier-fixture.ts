import { writeFile } from 'node:fs/promises';
import { buildClassifier, type ClassifierArch, resolveVitOptions, type VitOptions } from '@bmc/classify';
import { exportOnnx } from '@bmc/export';

/** A ViT of 4 x 4 tokens of 16 channels, 2 blocks of 2 heads: every op kind of the default ViT, built in well under a second. */
const TINY_VIT: VitOptions = { dim: 16, depth: 2, heads: 2, patch: 8 };

/**
 * An untrained cell-type classifier (seeded weights, 32 px crops) written to `file` as
 * `bmc classify export` writes it (inputs `crops`, outputs `logits`, the run's metadata). `arch`
 * `'resnet'` (default): 1/16 of ResNet18's widths; `'vit'`: a tiny `bmc classify train --arch vit`
 * (LayerNormalization, MatMul, Erf GELU, Softmax in its ONNX). Run on tfjs's current backend.
 */
export async function writeUntrainedClassifier(
  file: string,
  classNames: string[],
  arch: ClassifierArch = 'resnet',
): Promise<void> {
  const model =
    arch === 'vit'
      ? buildClassifier({ arch, numClasses: classNames.length, cropSize: 32, vit: TINY_VIT, seed: 3 })
      : buildClassifier({ numClasses: classNames.length, cropSize: 32, widthMultiplier: 0.0625, seed: 3 });
  const meta = {
    classNames,
    cropSize: 32,
    margin: 0.15,
    ...(arch === 'vit'
      ? { architecture: { arch, backbone: 'vit', ...resolveVitOptions(32, TINY_VIT) } }
      : {}),
  };
  await writeFile(
    file,
    exportOnnx(model, {
      inputNames: ['crops'],
      outputNames: ['logits'],
      metadata: { bmc_classifier: JSON.stringify(meta) },
      graphName: 'bmc-classifier',
    }).bytes,
  );
  model.dispose();
}
