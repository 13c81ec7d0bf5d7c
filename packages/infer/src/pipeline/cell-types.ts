/**
 * The second stage in any runtime (Node's onnxruntime-node, the viewer's onnxruntime-web): cut each
 * detected cell with the classifier's own crop rule, run the classifier, call each cell's type
 * (below the threshold: unclassified) and count the differential. Browser-safe, no I/O.
 */
import {
  type CellCall,
  callCells,
  cropCell,
  type DifferentialCount,
  differentialCount,
  normalizeCrops,
  softmaxRows,
} from '@bmc/classify';
import { readOnnxMetadataProps } from '@bmc/export/metadata';
import type { RawPixels } from './types.js';

/** What `bmc classify export` writes into `metadata_props.bmc_classifier` (the part inference needs). */
export interface ClassifierMeta {
  classNames: string[];
  cropSize: number;
  margin: number;
}

/** Classes a differential of nucleated cells leaves out when the classifier knows them. */
export const NON_NUCLEATED = ['platelet'];

/** The classifier's metadata; throws an Error saying why a file is not a bmc cell classifier. */
export function readClassifierMeta(bytes: Uint8Array, source: string): ClassifierMeta {
  const raw = readOnnxMetadataProps(bytes, source).bmc_classifier;
  if (!raw) throw new Error('no bmc_classifier metadata: export it with `bmc classify export`');
  const meta = JSON.parse(raw) as ClassifierMeta;
  if (!Array.isArray(meta.classNames) || !(meta.cropSize > 0) || !(meta.margin >= 0))
    throw new Error('bmc_classifier metadata lacks classNames / cropSize / margin');
  return meta;
}

/** Runs the classifier network: NCHW crops `[n, 3, S, S]` in, logits `[n, K]` out. */
export type ClassifierRunner = (nchw: Float32Array, n: number, cropSize: number) => Promise<Float32Array>;

/** Best type and its probability for every box `[x1, y1, x2, y2]` (image pixels). */
export async function classifyBoxes(
  run: ClassifierRunner,
  meta: ClassifierMeta,
  image: RawPixels,
  boxes: readonly (readonly [number, number, number, number])[],
  threshold: number,
): Promise<CellCall[]> {
  if (boxes.length === 0) return [];
  // RGB or RGBA bytes -> float RGB in [0, 1], the crop rule's input.
  const ch = image.channels;
  const rgb = new Float32Array(image.width * image.height * 3);
  for (let p = 0; p < image.width * image.height; p++)
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = image.data[p * ch + c]! / 255;
  const src = { data: rgb, width: image.width, height: image.height };
  const S = meta.cropSize;
  const nhwc = normalizeCrops(boxes.map((b) => cropCell(src, b, { cropSize: S, margin: meta.margin })));
  const n = boxes.length;
  // The ONNX graph takes NCHW.
  const nchw = new Float32Array(nhwc.length);
  for (let b = 0; b < n; b++)
    for (let p = 0; p < S * S; p++)
      for (let c = 0; c < 3; c++) nchw[(b * 3 + c) * S * S + p] = nhwc[(b * S * S + p) * 3 + c]!;
  const k = meta.classNames.length;
  return callCells(softmaxRows(await run(nchw, n, S), k), k, threshold);
}

/** One image's (or one request's) differential of nucleated cells: platelets left out. */
export function cellDifferential(
  calls: readonly CellCall[],
  classNames: readonly string[],
  threshold: number,
): DifferentialCount {
  return differentialCount(calls, classNames, threshold, NON_NUCLEATED);
}
