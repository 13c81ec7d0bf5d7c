import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { UNCLASSIFIED } from '@bmc/classify';
import type { Dataset, DatasetImage } from '@bmc/data';
import type { CellClassifier, Detection, Detector, RawPixels } from '@bmc/infer';
import { type Box, colourHistogram, type ImageEvidence, type ScoredBox } from './acquisition.js';

/** One image's detections, as `bmc label propose` and `bmc label rank` need them. */
export interface ImageDetections {
  readonly file: string;
  readonly width: number;
  readonly height: number;
  /** Every candidate (above the model's candidate threshold), highest score first. */
  readonly detections: readonly Detection[];
  /** Candidates on the mirrored image, in this image's coordinates (only when asked for). */
  readonly flipped?: readonly ScoredBox[];
  readonly histogram: Float32Array;
  /**
   * With a classifier: the cell type of each proposal (the detections at or above the counting
   * threshold, in order), an index into the classifier's class names or -1 below its threshold.
   */
  readonly types?: readonly number[];
}

export interface DetectImagesResult {
  readonly images: ImageDetections[];
  readonly failed: { file: string; error: string }[];
}

/** Mirrors an image left-right (a new buffer). */
export function flipHorizontal(image: RawPixels): RawPixels {
  const { width, height, channels } = image;
  const out = new Uint8Array(image.data.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let x = 0; x < width; x++) {
      const src = row + x * channels;
      const dst = row + (width - 1 - x) * channels;
      for (let c = 0; c < channels; c++) out[dst + c] = image.data[src + c]!;
    }
  }
  return { data: out, width, height, channels };
}

/** A box found on the mirrored image, in the original image's coordinates. */
export function unflipBox(box: readonly number[], width: number): Box {
  return [width - box[2]!, box[1]!, width - box[0]!, box[3]!];
}

/**
 * Runs the detector over image files (through @bmc/infer's library API: the model's pixel scale,
 * tiling and candidate threshold), optionally also on each image's mirror. An image that cannot be
 * read is reported in `failed` and skipped, as `bmc detect` does.
 */
export async function detectImages(
  detector: Detector,
  files: readonly string[],
  opts: { flip?: boolean; decode: (file: string) => Promise<RawPixels>; onImage?: (i: number) => void },
): Promise<DetectImagesResult> {
  const images: ImageDetections[] = [];
  const failed: { file: string; error: string }[] = [];
  for (let i = 0; i < files.length; i++) {
    const file = files[i]!;
    try {
      const image = await opts.decode(file);
      const res = await detector.detect(image);
      let flipped: ScoredBox[] | undefined;
      if (opts.flip) {
        const m = await detector.detect(flipHorizontal(image));
        flipped = m.detections.map((d) => ({ box: unflipBox(d.box, image.width), score: d.score }));
      }
      images.push({
        file,
        width: image.width,
        height: image.height,
        detections: res.detections,
        ...(flipped ? { flipped } : {}),
        histogram: colourHistogram(image.data, image.width, image.height, image.channels),
      });
    } catch (e) {
      const msg = (e as Error).message;
      failed.push({ file, error: msg.startsWith(file) ? msg.slice(file.length + 2) : msg });
    }
    opts.onImage?.(i + 1);
  }
  return { images, failed };
}

/**
 * Adds each proposal's cell type (the detections at or above `threshold`) from a classifier
 * exported by `bmc classify export`, with the crop rule `bmc detect --classifier` uses. The images
 * are decoded again: only the proposals of the images kept are classified, after ranking.
 */
export async function addCellTypes(
  images: readonly ImageDetections[],
  classifier: CellClassifier,
  threshold: number,
  decode: (file: string) => Promise<RawPixels>,
): Promise<ImageDetections[]> {
  const out: ImageDetections[] = [];
  for (const im of images) {
    const kept = im.detections.filter((d) => d.score >= threshold);
    const calls = kept.length
      ? await classifier.classify(
          await decode(im.file),
          kept.map((d) => d.box),
        )
      : [];
    out.push({ ...im, types: calls.map((c) => c.type) });
  }
  return out;
}

/** The evidence {@link acquisition} scores, from one image's detections. */
export function evidenceOf(d: ImageDetections): ImageEvidence {
  return {
    detections: d.detections.map((x) => ({ box: x.box, score: x.score })),
    flipped: d.flipped ?? [],
    histogram: d.histogram,
  };
}

/**
 * The proposals as a dataset: detections at or above the counting threshold, with their scores,
 * categories from the model's class names; with cell types (`typeNames`, the classifier's class
 * names), each box's category is its type, and a box the classifier is not sure about (below its
 * threshold) is `unclassified`, the last category, for the person to decide.
 */
export function proposalDataset(
  images: readonly ImageDetections[],
  classNames: readonly string[],
  threshold: number,
  typeNames?: readonly string[],
): Dataset {
  const names = typeNames ? [...typeNames, UNCLASSIFIED] : classNames;
  return {
    categories: names.map((name, i) => ({ id: i + 1, name })),
    images: images.map((im, i): DatasetImage => {
      const kept = im.detections.filter((d) => d.score >= threshold);
      if (typeNames && im.types?.length !== kept.length)
        throw new Error(`${im.file}: ${kept.length} proposals but ${im.types?.length ?? 0} cell types`);
      const label = (d: Detection, k: number) =>
        typeNames ? (im.types![k]! >= 0 ? im.types![k]! : typeNames.length) : d.classId;
      return {
        id: i + 1,
        file: im.file,
        width: im.width,
        height: im.height,
        boxes: Float32Array.from(kept.flatMap((d) => d.box)),
        labels: Int32Array.from(kept.map(label)),
        iscrowd: new Uint8Array(kept.length),
        difficult: new Uint8Array(kept.length),
        scores: Float32Array.from(kept.map((d) => d.score)),
      };
    }),
    report: { issues: [] },
  };
}

/** `model.onnx@1a2b3c4d5e6f`: a file's name and the start of its SHA-256, which weights these are. */
export async function fileVersion(path: string): Promise<string> {
  const hash = createHash('sha256')
    .update(await readFile(path))
    .digest('hex')
    .slice(0, 12);
  return `${basename(path)}@${hash}`;
}

/** `model.onnx@1a2b3c4d5e6f (bmc 0.1.0)`: which weights proposed the boxes, for Label Studio's model_version. */
export async function modelVersion(path: string, bmcVersion: string): Promise<string> {
  return `${await fileVersion(path)} (bmc ${bmcVersion})`;
}

/** What batch.json records about the classifier that named the cell types. */
export async function classifierInfo(
  c: CellClassifier,
): Promise<{ model: string; version: string; classNames: string[]; threshold: number }> {
  return {
    model: c.path,
    version: await fileVersion(c.path),
    classNames: [...c.classNames],
    threshold: c.threshold,
  };
}
