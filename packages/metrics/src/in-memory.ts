import { InvalidInputError } from '@bmc/core';
import type { CocoDetection } from './coco-types.js';

/** One image's detector output, as the rest of bmc produces it. */
export interface ImageDetections {
  imageId: number;
  /** `[N, 4]` xyxy in image pixels. */
  boxes: ArrayLike<number>;
  /** `[N]` */
  scores: ArrayLike<number>;
  /** `[N]` COCO category ids (map class indices to ids before calling). */
  categoryIds: ArrayLike<number>;
}

/**
 * Detector outputs (xyxy) to a COCO results list (xywh), the format `evaluateCoco` and
 * pycocotools read. Widths are `x2 - x1` in float64 on the values given.
 */
export function detectionsToCoco(images: readonly ImageDetections[]): CocoDetection[] {
  const out: CocoDetection[] = [];
  images.forEach((im, i) => {
    const n = im.scores.length;
    if (im.boxes.length !== 4 * n || im.categoryIds.length !== n) {
      throw new InvalidInputError(
        `detections[${i}] (image ${im.imageId}): ${im.boxes.length / 4} boxes, ${n} scores, ${im.categoryIds.length} category ids`,
      );
    }
    for (let j = 0; j < n; j++) {
      const x1 = im.boxes[4 * j]!;
      const y1 = im.boxes[4 * j + 1]!;
      out.push({
        image_id: im.imageId,
        category_id: im.categoryIds[j]!,
        bbox: [x1, y1, im.boxes[4 * j + 2]! - x1, im.boxes[4 * j + 3]! - y1],
        score: im.scores[j]!,
      });
    }
  });
  return out;
}
