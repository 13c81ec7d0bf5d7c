import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '@bmc/core';
import { writeFileAtomic } from '@bmc/core/node';
import { exportOnnx, loadCheckpoint } from '@bmc/export';
import { listCheckpoints, runPaths } from '../run/run-dir.js';

/** The weights a classifier run exports: `best/` (best validation balanced accuracy), else its newest checkpoint. */
export function classifierWeights(runDir: string): string {
  const paths = runPaths(runDir);
  if (existsSync(paths.best)) return paths.best;
  const newest = listCheckpoints(paths)[0];
  if (!newest) throw new InputError(`${runDir}: no best/ or checkpoints/ to export`, runDir);
  return newest.dir;
}

/** Metadata keys of an exported classifier (ONNX `metadata_props`). */
export const CLASSIFIER_METADATA_KEY = 'bmc_classifier';

/**
 * Exports a classifier run to ONNX: input `crops` NCHW `[N, 3, S, S]` (ImageNet-normalised RGB),
 * output `logits` `[N, K]`, and `metadata_props.bmc_classifier` = the run's `classifier.json`
 * (class names, crop size, margin, crop rule, normalisation), so a consumer cuts and
 * normalises crops exactly as in training.
 */
export async function exportClassifierOnnx(
  runDir: string,
  out: string,
): Promise<{ bytes: number; classes: number }> {
  const metaFile = join(runDir, 'classifier.json');
  let meta: { classNames: string[] };
  try {
    meta = JSON.parse(readFileSync(metaFile, 'utf8'));
  } catch (e) {
    throw new InputError(`${metaFile}: not a classifier run folder (${(e as Error).message})`, metaFile);
  }
  const ck = await loadCheckpoint(classifierWeights(runDir));
  try {
    const r = exportOnnx(ck.model, {
      inputNames: ['crops'],
      outputNames: ['logits'],
      metadata: { [CLASSIFIER_METADATA_KEY]: JSON.stringify(meta) },
      graphName: 'bmc-classifier',
    });
    await writeFileAtomic(out, r.bytes);
    return { bytes: r.bytes.length, classes: meta.classNames.length };
  } finally {
    ck.model.dispose();
  }
}
