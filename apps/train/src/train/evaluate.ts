import type { Anchors } from '@bmc/core';
import type { BatchLoader } from '@bmc/data';
import { type Detections, type PostprocessOptions, postprocessBatch } from '@bmc/heads-iou';
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
 * Runs the model over a loader (inference mode: letterbox + normalise only),
 * post-processes, and maps boxes back to each image's original pixels by the
 * letterbox scale, so metrics compare with the annotations as written.
 */
export async function predictLoader(
  model: tf.LayersModel,
  loader: BatchLoader,
  anchorsFor: (h: number, w: number) => Anchors,
  numClasses: number,
  classes: readonly string[],
  post: PostprocessOptions,
): Promise<Predictions> {
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  const gt: CocoGroundTruth = {
    images,
    annotations,
    categories: classes.map((name, k) => ({ id: k + 1, name })),
  };
  const dt: CocoDetection[] = [];
  const perImage = new Map<number, Detections>();
  let annId = 1;
  let ms = 0;
  let count = 0;
  for await (const batch of loader.epoch(0)) {
    const t0 = performance.now();
    const x = tf.tensor4d(batch.images, [batch.batchSize, batch.height, batch.width, 3]);
    const raw = await predictRaw(model, x);
    x.dispose();
    const anchors = anchorsFor(batch.height, batch.width);
    const dets = postprocessBatch(raw, batch.batchSize, anchors, numClasses, {
      ...post,
      imageSize: [batch.height, batch.width],
    });
    ms += performance.now() - t0;
    count += batch.batchSize;
    for (let b = 0; b < batch.batchSize; b++) {
      const index = batch.indices[b]!;
      const imageId = index + 1;
      const orig = loader.source.size(index);
      // The letterbox resized the longer side; undo it per axis (rounding makes sx and sy differ slightly).
      const f = Math.max(orig.width, orig.height) / loader.options.augment.size!;
      const sx = orig.width / Math.round(orig.width / f);
      const sy = orig.height / Math.round(orig.height / f);
      images.push({ id: imageId, width: orig.width, height: orig.height });
      const g = batch.boxes[b]!;
      for (let k = 0; k < g.length / 4; k++) {
        const w = (g[4 * k + 2]! - g[4 * k]!) * sx;
        const h = (g[4 * k + 3]! - g[4 * k + 1]!) * sy;
        annotations.push({
          id: annId++,
          image_id: imageId,
          category_id: batch.labels[b]![k]! + 1,
          bbox: [g[4 * k]! * sx, g[4 * k + 1]! * sy, w, h],
          area: w * h,
          iscrowd: 0,
        });
      }
      const d = dets[b]!;
      const boxes = new Float32Array(d.boxes.length);
      for (let k = 0; k < d.scores.length; k++) {
        boxes[4 * k] = d.boxes[4 * k]! * sx;
        boxes[4 * k + 1] = d.boxes[4 * k + 1]! * sy;
        boxes[4 * k + 2] = d.boxes[4 * k + 2]! * sx;
        boxes[4 * k + 3] = d.boxes[4 * k + 3]! * sy;
        dt.push({
          image_id: imageId,
          category_id: d.labels[k]! + 1,
          bbox: [
            boxes[4 * k]!,
            boxes[4 * k + 1]!,
            boxes[4 * k + 2]! - boxes[4 * k]!,
            boxes[4 * k + 3]! - boxes[4 * k + 1]!,
          ],
          score: d.scores[k]!,
        });
      }
      perImage.set(index, { boxes, scores: d.scores, labels: d.labels });
    }
  }
  return { gt, dt, perImage, msPerImage: count ? ms / count : 0 };
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
