import { toBytes } from '@bmc/data';
import type { BmcMetadata } from '@bmc/export';
import type { Detections } from '@bmc/heads-iou';
import { detectPixels, type NetworkRunner } from '@bmc/infer/pipeline';
import {
  buildReport,
  type CocoAnnotation,
  type CocoDetection,
  type CocoEvalResult,
  type CocoGroundTruth,
  type CocoImage,
  type EvaluationReport,
  evaluateCoco,
} from '@bmc/metrics';
import * as tf from '@tensorflow/tfjs';
import type { Split } from './data.js';

export interface Predictions {
  /** Ground truth of the split in original image pixels, as COCO. */
  gt: CocoGroundTruth;
  /** Detections in original image pixels, as a COCO results list. */
  dt: CocoDetection[];
  /** Per image (by position in the source): detections in original pixels. */
  perImage: Map<number, Detections>;
  /** Network + post-processing milliseconds per image. */
  msPerImage: number;
}

/** Raw outputs of one inference batch as flat arrays (read outside any tidy). */
export async function predictRaw(model: tf.LayersModel, images: tf.Tensor4D) {
  const out = model.predict(images) as tf.Tensor[];
  const [cls, box, iou] = out;
  const arrays = {
    clsLogits: (await cls!.data()) as Float32Array,
    boxDeltas: (await box!.data()) as Float32Array,
    ...(iou ? { iouLogits: (await iou.data()) as Float32Array } : {}),
  };
  tf.dispose(out);
  return arrays;
}

/**
 * `model` as @bmc/infer's `NetworkRunner`: the pipeline hands NCHW float32, tfjs
 * layers models take NHWC. Every tensor is freed before the outputs are returned.
 */
export function tfjsRunner(model: tf.LayersModel): NetworkRunner {
  return async (input, height, width) => {
    const x = tf.tidy(() => tf.tensor4d(input, [1, 3, height, width]).transpose<tf.Tensor4D>([0, 2, 3, 1]));
    try {
      return await predictRaw(model, x);
    } finally {
      x.dispose();
    }
  };
}

/**
 * Detects on every image of a split the way `bmc detect` does on the exported
 * model: the full source image as 8-bit pixels through @bmc/infer's
 * `detectPixels` (the same resize or tiling, the same pre- and post-processing),
 * with the network run by tfjs. `meta` is the description the export writes
 * (`runMetadata`), so evaluation and detection differ only in the runtime's
 * arithmetic. Ground truth and detections are in source pixels.
 */
export async function predictSplit(
  model: tf.LayersModel,
  split: Pick<Split, 'source' | 'classes'>,
  meta: BmcMetadata,
): Promise<Predictions> {
  const { source, classes } = split;
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  const gt: CocoGroundTruth = {
    images,
    annotations,
    categories: classes.map((name, k) => ({ id: k + 1, name })),
  };
  const dt: CocoDetection[] = [];
  const perImage = new Map<number, Detections>();
  const run = tfjsRunner(model);
  const load = (i: number) => {
    const { width, height } = source.size(i);
    return source.load(i, width, height);
  };
  let annId = 1;
  let ms = 0;
  // The next image decodes (libvips, off the JS thread) while the network runs on this one.
  let next = source.length > 0 ? load(0) : undefined;
  for (let index = 0; index < source.length; index++) {
    const sample = await next!;
    next = index + 1 < source.length ? load(index + 1) : undefined;
    next?.catch(() => {}); // surfaced when awaited
    const imageId = index + 1;
    const { width, height } = sample.image;
    images.push({ id: imageId, width, height });
    const g = sample.boxes;
    for (let k = 0; k < g.length / 4; k++) {
      const w = g[4 * k + 2]! - g[4 * k]!;
      const h = g[4 * k + 3]! - g[4 * k + 1]!;
      annotations.push({
        id: annId++,
        image_id: imageId,
        category_id: sample.labels[k]! + 1,
        bbox: [g[4 * k]!, g[4 * k + 1]!, w, h],
        area: w * h,
        iscrowd: 0,
      });
    }
    // The 8-bit pixels `bmc detect` decodes from the file (the sources hold bytes / 255).
    const pixels = { data: toBytes(sample.image), width, height, channels: 3 as const };
    const t0 = performance.now();
    const res = await detectPixels(run, meta, pixels);
    ms += performance.now() - t0;
    const n = res.detections.length;
    const boxes = new Float32Array(4 * n);
    const scores = new Float32Array(n);
    const labels = new Int32Array(n);
    res.detections.forEach((d, k) => {
      boxes.set(d.box, 4 * k);
      scores[k] = d.score;
      labels[k] = d.classId;
      dt.push({
        image_id: imageId,
        category_id: d.classId + 1,
        bbox: [d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]],
        score: d.score,
      });
    });
    perImage.set(index, { boxes, scores, labels });
  }
  return { gt, dt, perImage, msPerImage: source.length ? ms / source.length : 0 };
}

export interface Evaluation {
  result: CocoEvalResult;
  report: EvaluationReport;
  predictions: Predictions;
}

export function evaluatePredictions(p: Predictions, title: string): Evaluation {
  const result = evaluateCoco(p.gt, p.dt);
  return { result, report: buildReport(result, { title }), predictions: p };
}
