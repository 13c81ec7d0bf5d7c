import type { BoxesXYXY } from '@bmc/core';
import type { ImageHWC } from './image-io.js';

/** An image with its boxes: what augmentations transform and the loader batches. */
export interface Sample {
  readonly image: ImageHWC;
  /** `[N, 4]` xyxy pixels in `image`. */
  readonly boxes: BoxesXYXY;
  /** `[N]` label indices. */
  readonly labels: Int32Array;
  /** Where the sample came from (dataset image id or synthetic index). */
  readonly id?: number;
}

/** The sample with a new image and new boxes / labels (plain arrays, copied into typed arrays). */
export function withBoxes(s: Sample, image: ImageHWC, boxes: number[], labels: number[]): Sample {
  return { ...s, image, boxes: Float32Array.from(boxes), labels: Int32Array.from(labels) };
}
