import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Dataset, DatasetImage } from '@bmc/data';
import type { Detection, Detector, RawPixels } from '@bmc/infer';
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
 * categories from the model's class names.
 */
export function proposalDataset(
  images: readonly ImageDetections[],
  classNames: readonly string[],
  threshold: number,
): Dataset {
  return {
    categories: classNames.map((name, i) => ({ id: i + 1, name })),
    images: images.map((im, i): DatasetImage => {
      const kept = im.detections.filter((d) => d.score >= threshold);
      return {
        id: i + 1,
        file: im.file,
        width: im.width,
        height: im.height,
        boxes: Float32Array.from(kept.flatMap((d) => d.box)),
        labels: Int32Array.from(kept.map((d) => d.classId)),
        iscrowd: new Uint8Array(kept.length),
        difficult: new Uint8Array(kept.length),
        scores: Float32Array.from(kept.map((d) => d.score)),
      };
    }),
    report: { issues: [] },
  };
}

/** `model.onnx@1a2b3c4d5e6f (bmc 0.1.0)`: which weights proposed the boxes, for Label Studio's model_version. */
export async function modelVersion(path: string, bmcVersion: string): Promise<string> {
  const hash = createHash('sha256')
    .update(await readFile(path))
    .digest('hex')
    .slice(0, 12);
  return `${basename(path)}@${hash} (bmc ${bmcVersion})`;
}
