import type { BoxesXYXY } from '@bmc/core';
import type { ValidationReport } from './validation.js';

export interface Category {
  /** The id as written in the source file (COCO ids need not be contiguous). */
  readonly id: number;
  readonly name: string;
}

/** One image and its boxes. Box `k` has category `dataset.categories[labels[k]]`. */
export interface DatasetImage {
  /** COCO image id, or a running number for VOC / YOLO. */
  readonly id: number;
  /** Absolute path of the image file. */
  readonly file: string;
  readonly width: number;
  readonly height: number;
  /** `[N, 4]` xyxy in pixels, continuous coordinates: a box covering pixel columns 0..9 is `[0, 10]`. */
  readonly boxes: BoxesXYXY;
  /** `[N]` index into `Dataset.categories` (0-based, contiguous). */
  readonly labels: Int32Array;
  /** `[N]` 1 for COCO `iscrowd` boxes. */
  readonly iscrowd: Uint8Array;
  /** `[N]` 1 for VOC `difficult` objects. */
  readonly difficult: Uint8Array;
  /** The annotation file this image's boxes came from (used in messages). */
  readonly source?: string;
  /** `[N]` model scores when the boxes are a detector's proposals (absent for labels people made). */
  readonly scores?: Float32Array;
}

/** The one in-memory dataset type every reader returns and the COCO writer takes. */
export interface Dataset {
  readonly categories: readonly Category[];
  readonly images: readonly DatasetImage[];
  /** What lenient validation changed; empty under `strict`. */
  readonly report: ValidationReport;
  /**
   * What the reader had to assume, which a user should hear about although nothing in the data is
   * wrong: e.g. a YOLO folder without class names, whose classes are then named by id.
   */
  readonly warnings?: readonly string[];
}

/** Total boxes, and boxes per category name. */
export function countBoxes(dataset: Dataset): { total: number; perCategory: Record<string, number> } {
  const perCategory: Record<string, number> = {};
  for (const c of dataset.categories) perCategory[c.name] = 0;
  let total = 0;
  for (const img of dataset.images) {
    total += img.labels.length;
    for (const l of img.labels) {
      const name = dataset.categories[l]!.name;
      perCategory[name] = (perCategory[name] ?? 0) + 1;
    }
  }
  return { total, perCategory };
}

/** Builds a {@link DatasetImage} from plain arrays. */
export function makeImage(init: {
  id: number;
  file: string;
  width: number;
  height: number;
  boxes: number[];
  labels: number[];
  iscrowd?: number[];
  difficult?: number[];
  source?: string;
}): DatasetImage {
  const n = init.labels.length;
  return {
    id: init.id,
    file: init.file,
    width: init.width,
    height: init.height,
    boxes: Float32Array.from(init.boxes),
    labels: Int32Array.from(init.labels),
    iscrowd: init.iscrowd ? Uint8Array.from(init.iscrowd) : new Uint8Array(n),
    difficult: init.difficult ? Uint8Array.from(init.difficult) : new Uint8Array(n),
    ...(init.source ? { source: init.source } : {}),
  };
}
