import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { CellCall, DifferentialCount } from '@bmc/classify';
import { InputError } from '@bmc/core';
import * as ort from 'onnxruntime-node';
import {
  type ClassifierMeta,
  cellDifferential,
  classifyBoxes,
  NON_NUCLEATED,
  readClassifierMeta,
} from './pipeline/cell-types.js';
import type { RawPixels } from './pipeline/types.js';

export { NON_NUCLEATED };

export interface CellClassifier {
  /** The ONNX file it was loaded from. */
  readonly path: string;
  readonly classNames: readonly string[];
  readonly cropSize: number;
  readonly margin: number;
  /** Probability below which a cell is counted as unclassified. */
  readonly threshold: number;
  /** Best type and its probability for every box (crop rule from the model's metadata). */
  classify(
    image: RawPixels,
    boxes: readonly (readonly [number, number, number, number])[],
  ): Promise<CellCall[]>;
  dispose(): Promise<void>;
}

/**
 * Loads a classifier exported by `bmc classify export` into onnxruntime-node. A file that is not
 * one (no `bmc_classifier` metadata, unreadable, not ONNX) is an `InputError` naming it.
 */
export async function loadCellClassifier(
  path: string,
  threshold: number,
  threads?: number,
): Promise<CellClassifier> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new InputError(`${path}: cannot read the classifier (${(e as Error).message})`, path);
  }
  let meta: ClassifierMeta;
  try {
    meta = readClassifierMeta(bytes, path);
  } catch (e) {
    throw new InputError(`${path}: not a bmc cell classifier (${(e as Error).message})`, path);
  }
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads ?? availableParallelism(),
    interOpNumThreads: 1,
  });
  const run = async (nchw: Float32Array, n: number, S: number) => {
    const out = await session.run({
      [session.inputNames[0]!]: new ort.Tensor('float32', nchw, [n, 3, S, S]),
    });
    return out[session.outputNames[0]!]!.data as Float32Array;
  };
  return {
    path,
    classNames: meta.classNames,
    cropSize: meta.cropSize,
    margin: meta.margin,
    threshold,
    classify: (image, boxes) => classifyBoxes(run, meta, image, boxes, threshold),
    dispose: () => session.release(),
  };
}

/** One image's differential (nucleated cells; platelets left out). */
export function imageDifferential(
  calls: readonly CellCall[],
  c: CellClassifier,
  threshold: number,
): DifferentialCount {
  return cellDifferential(calls, c.classNames, threshold);
}
