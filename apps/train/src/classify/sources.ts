import { cropCell, type RgbImage } from '@bmc/classify';
import { type LabelledCrops, readClassFolders, synthCrops } from '@bmc/classify/train';
import { InputError, UsageError } from '@bmc/core';
import { decodeImage, reason } from '@bmc/data';
import { readDataset } from '../commands/data.js';

export interface SourceOptions {
  /** A folder with one sub-folder per class of single-cell images. */
  folders?: string;
  /** A detection dataset bmc reads (COCO / VOC / YOLO): each box is one crop of its class. */
  dataset?: string;
  /** Synthetic smears: how many images to draw (every cell labelled with its type). */
  synthetic?: number;
  cropSize: number;
  /** Crop margin for boxes (the folder source uses the whole image, margin 0). */
  margin: number;
  seed: number;
}

/** The labelled crops of exactly one source; which one is the user's choice, stated in the log. */
export async function readCropSource(o: SourceOptions): Promise<LabelledCrops> {
  const given = [o.folders, o.dataset, o.synthetic].filter((x) => x !== undefined).length;
  if (given !== 1)
    throw new UsageError('give exactly one of --folders <dir>, --dataset <path>, --synthetic <images>');
  if (o.folders !== undefined) return readClassFolders(o.folders, o.cropSize);
  if (o.synthetic !== undefined) {
    if (!Number.isInteger(o.synthetic) || o.synthetic < 1)
      throw new UsageError(`--synthetic must be an integer >= 1, got ${o.synthetic}`);
    return synthCrops(o.synthetic, { cropSize: o.cropSize, margin: o.margin }, o.seed);
  }
  return datasetCrops(o.dataset!, o.cropSize, o.margin);
}

/** Crops every box of a detection dataset (its categories become the classes). */
async function datasetCrops(path: string, cropSize: number, margin: number): Promise<LabelledCrops> {
  const ds = await readDataset(path);
  const crops: RgbImage[] = [];
  const labels: number[] = [];
  const sources: string[] = [];
  for (const img of ds.images) {
    if (img.labels.length === 0) continue;
    let image: RgbImage;
    try {
      image = await decodeImage(img.file);
    } catch (e) {
      throw new InputError(`${img.file}: cannot decode the image: ${reason(e)}`, img.file);
    }
    for (let b = 0; b < img.labels.length; b++) {
      const box = Array.from(img.boxes.subarray(b * 4, b * 4 + 4)) as [number, number, number, number];
      crops.push(cropCell(image, box, { cropSize, margin }));
      labels.push(img.labels[b]!);
      sources.push(`${img.file}#box${b}`);
    }
  }
  if (crops.length === 0) throw new InputError(`${path}: the dataset has no boxes to crop`, path);
  return { classNames: ds.categories.map((c) => c.name), crops, labels: Int32Array.from(labels), sources };
}
