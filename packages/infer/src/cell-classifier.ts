import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import {
  type CellCall,
  callCells,
  cropCell,
  type DifferentialCount,
  differentialCount,
  normalizeCrops,
  softmaxRows,
} from '@bmc/classify';
import { InputError } from '@bmc/core';
import { readOnnxMetadataProps } from '@bmc/export/metadata';
import * as ort from 'onnxruntime-node';
import type { RawPixels } from './pipeline/types.js';

/** What `bmc classify export` writes into `metadata_props.bmc_classifier`. */
interface ClassifierMeta {
  classNames: string[];
  cropSize: number;
  margin: number;
}

/** Classes a differential of nucleated cells leaves out when the classifier knows them. */
export const NON_NUCLEATED = ['platelet'];

export interface CellClassifier {
  readonly classNames: readonly string[];
  readonly cropSize: number;
  readonly margin: number;
  /** Best type and its probability for every box (crop rule from the model's metadata). */
  classify(
    image: RawPixels,
    boxes: readonly (readonly [number, number, number, number])[],
  ): Promise<CellCall[]>;
  dispose(): Promise<void>;
}

/**
 * Loads a classifier exported by `bmc classify export`. A file that is not one (no
 * `bmc_classifier` metadata, unreadable, not ONNX) is an `InputError` naming it.
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
    const raw = readOnnxMetadataProps(bytes, path).bmc_classifier;
    if (!raw) throw new Error('no bmc_classifier metadata: export it with `bmc classify export`');
    meta = JSON.parse(raw) as ClassifierMeta;
  } catch (e) {
    throw new InputError(`${path}: not a bmc cell classifier (${(e as Error).message})`, path);
  }
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads ?? availableParallelism(),
    interOpNumThreads: 1,
  });
  const k = meta.classNames.length;
  const S = meta.cropSize;
  return {
    classNames: meta.classNames,
    cropSize: S,
    margin: meta.margin,
    async classify(image, boxes) {
      if (boxes.length === 0) return [];
      // RGB or RGBA bytes -> float RGB in [0, 1], the crop rule's input.
      const ch = image.channels;
      const rgb = new Float32Array(image.width * image.height * 3);
      for (let p = 0; p < image.width * image.height; p++)
        for (let c = 0; c < 3; c++) rgb[p * 3 + c] = image.data[p * ch + c]! / 255;
      const src = { data: rgb, width: image.width, height: image.height };
      const nhwc = normalizeCrops(boxes.map((b) => cropCell(src, b, { cropSize: S, margin: meta.margin })));
      const n = boxes.length;
      // The ONNX graph takes NCHW.
      const nchw = new Float32Array(nhwc.length);
      for (let b = 0; b < n; b++)
        for (let p = 0; p < S * S; p++)
          for (let c = 0; c < 3; c++) nchw[(b * 3 + c) * S * S + p] = nhwc[(b * S * S + p) * 3 + c]!;
      const out = await session.run({
        [session.inputNames[0]!]: new ort.Tensor('float32', nchw, [n, 3, S, S]),
      });
      const logits = out[session.outputNames[0]!]!.data as Float32Array;
      return callCells(softmaxRows(logits, k), k, threshold);
    },
    dispose: () => session.release(),
  };
}

/** One image's differential (nucleated cells; platelets left out). */
export function imageDifferential(
  calls: readonly CellCall[],
  c: CellClassifier,
  threshold: number,
): DifferentialCount {
  return differentialCount(calls, c.classNames, threshold, NON_NUCLEATED);
}
