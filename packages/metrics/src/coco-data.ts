import { InvalidInputError } from '@bmc/core';
import type { CocoDetection, CocoGroundTruth } from './coco-types.js';

/**
 * Ground truth validated and laid out as typed arrays. Images and categories are
 * indexed in ascending id order (pycocotools sorts both); annotations keep file order.
 */
export interface GroundTruthIndex {
  /** Image ids `[I]`, ascending. */
  imgIds: Float64Array;
  /** Category ids `[K]`, ascending. */
  catIds: Float64Array;
  /** Category names `[K]` (the id as text when a category has no name). */
  catNames: string[];
  /** `[N, 4]` xywh in float64. */
  boxes: Float64Array;
  /** `[N]` the annotation's `area` field (`w * h` when absent). */
  area: Float64Array;
  /** `[N]` 1 for `iscrowd` annotations. */
  crowd: Uint8Array;
  /** `[N]` annotation ids. */
  annIds: Float64Array;
  /** `[N]` index into `imgIds`. */
  imgIdx: Int32Array;
  /** `[N]` index into `catIds`. */
  catIdx: Int32Array;
  count: number;
  imgIndexOf: Map<number, number>;
  catIndexOf: Map<number, number>;
}

/** Detections validated and laid out as typed arrays, in results-file order. */
export interface DetectionIndex {
  /** `[N, 4]` xywh in float64. */
  boxes: Float64Array;
  /** `[N]` `w * h`. */
  area: Float64Array;
  score: Float64Array;
  imgIdx: Int32Array;
  catIdx: Int32Array;
  count: number;
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function idMap(
  list: readonly { id: number }[] | undefined,
  what: 'images' | 'categories',
): { ids: Float64Array; order: number[]; map: Map<number, number> } {
  if (!Array.isArray(list)) throw new InvalidInputError(`ground truth: "${what}" must be an array`);
  const seen = new Set<number>();
  for (let j = 0; j < list.length; j++) {
    const id = list[j]?.id;
    if (!isNum(id))
      throw new InvalidInputError(`ground truth ${what}[${j}]: id ${String(id)} is not a number`);
    if (seen.has(id)) throw new InvalidInputError(`ground truth ${what}[${j}]: duplicate id ${id}`);
    seen.add(id);
  }
  const order = list.map((_, j) => j).sort((a, b) => list[a]!.id - list[b]!.id);
  const ids = Float64Array.from(order, (j) => list[j]!.id);
  const map = new Map<number, number>();
  ids.forEach((id, i) => {
    map.set(id, i);
  });
  return { ids, order, map };
}

function readBox(bbox: unknown, where: string, out: Float64Array, i: number): void {
  if (!Array.isArray(bbox) || bbox.length !== 4) {
    throw new InvalidInputError(`${where}: bbox must be [x, y, w, h], got ${JSON.stringify(bbox)}`);
  }
  for (let c = 0; c < 4; c++) {
    const v = bbox[c];
    if (!isNum(v)) throw new InvalidInputError(`${where}: bbox[${c}] ${String(v)} is not a finite number`);
    out[4 * i + c] = v;
  }
  if (bbox[2] < 0 || bbox[3] < 0) {
    throw new InvalidInputError(`${where}: negative bbox size (w ${bbox[2]}, h ${bbox[3]})`);
  }
}

/**
 * Validates a COCO ground-truth object. Errors name the entry: unknown image or
 * category ids, duplicate ids, boxes that are not 4 finite numbers, negative sizes.
 * (pycocotools silently drops annotations of unknown images or categories and keeps
 * only the last of duplicate annotation ids; here both are errors.)
 */
export function indexGroundTruth(gt: CocoGroundTruth): GroundTruthIndex {
  if (gt === null || typeof gt !== 'object') throw new InvalidInputError('ground truth: not an object');
  const images = idMap(gt.images, 'images');
  const cats = idMap(gt.categories, 'categories');
  const anns = gt.annotations;
  if (!Array.isArray(anns)) throw new InvalidInputError('ground truth: "annotations" must be an array');
  const n = anns.length;
  const boxes = new Float64Array(4 * n);
  const area = new Float64Array(n);
  const crowd = new Uint8Array(n);
  const annIds = new Float64Array(n);
  const imgIdx = new Int32Array(n);
  const catIdx = new Int32Array(n);
  const seen = new Set<number>();
  for (let j = 0; j < n; j++) {
    const a = anns[j]!;
    const where = `ground truth annotations[${j}]`;
    if (a === null || typeof a !== 'object') throw new InvalidInputError(`${where}: not an object`);
    if (!isNum(a.id)) throw new InvalidInputError(`${where}: id ${String(a.id)} is not a number`);
    if (seen.has(a.id)) throw new InvalidInputError(`${where}: duplicate annotation id ${a.id}`);
    seen.add(a.id);
    const ii = images.map.get(a.image_id);
    if (ii === undefined) throw new InvalidInputError(`${where}: image_id ${a.image_id} is not in "images"`);
    const ki = cats.map.get(a.category_id);
    if (ki === undefined) {
      throw new InvalidInputError(`${where}: category_id ${a.category_id} is not in "categories"`);
    }
    readBox(a.bbox, where, boxes, j);
    const ar = a.area ?? boxes[4 * j + 2]! * boxes[4 * j + 3]!;
    if (!isNum(ar) || ar < 0) throw new InvalidInputError(`${where}: area ${String(a.area)} is not >= 0`);
    area[j] = ar;
    crowd[j] = a.iscrowd ? 1 : 0;
    annIds[j] = a.id;
    imgIdx[j] = ii;
    catIdx[j] = ki;
  }
  const catNames = cats.order.map((j) => {
    const c = gt.categories[j]!;
    return c.name ?? String(c.id);
  });
  return {
    imgIds: images.ids,
    catIds: cats.ids,
    catNames,
    boxes,
    area,
    crowd,
    annIds,
    imgIdx,
    catIdx,
    count: n,
    imgIndexOf: images.map,
    catIndexOf: cats.map,
  };
}

export interface DetectionIndexOptions {
  /**
   * 'error' (default): a detection whose category is not in the ground truth is an error.
   * 'ignore': drop it, as pycocotools does silently.
   */
  unknownCategory?: 'error' | 'ignore';
}

/**
 * Validates a COCO results list against the ground truth. Errors name the entry index:
 * unknown image ids (pycocotools: "Results do not correspond to current coco set"),
 * unknown category ids, boxes that are not 4 finite numbers, negative sizes, scores
 * that are not finite numbers.
 */
export function indexDetections(
  results: readonly CocoDetection[],
  gt: GroundTruthIndex,
  options: DetectionIndexOptions = {},
): DetectionIndex {
  if (!Array.isArray(results)) throw new InvalidInputError('results: must be an array of detections');
  const n = results.length;
  const boxes = new Float64Array(4 * n);
  const area = new Float64Array(n);
  const score = new Float64Array(n);
  const imgIdx = new Int32Array(n);
  const catIdx = new Int32Array(n);
  let kept = 0;
  for (let j = 0; j < n; j++) {
    const d = results[j]!;
    const where = `results[${j}]`;
    if (d === null || typeof d !== 'object') throw new InvalidInputError(`${where}: not an object`);
    const ii = gt.imgIndexOf.get(d.image_id);
    if (ii === undefined) {
      throw new InvalidInputError(
        `${where}: image_id ${String(d.image_id)} is not in the ground truth images`,
      );
    }
    const ki = gt.catIndexOf.get(d.category_id);
    if (ki === undefined) {
      if (options.unknownCategory === 'ignore') continue;
      throw new InvalidInputError(
        `${where}: category_id ${String(d.category_id)} is not in the ground truth categories`,
      );
    }
    if (!isNum(d.score))
      throw new InvalidInputError(`${where}: score ${String(d.score)} is not a finite number`);
    readBox(d.bbox, where, boxes, kept);
    area[kept] = boxes[4 * kept + 2]! * boxes[4 * kept + 3]!;
    score[kept] = d.score;
    imgIdx[kept] = ii;
    catIdx[kept] = ki;
    kept++;
  }
  return {
    boxes: boxes.subarray(0, 4 * kept),
    area: area.subarray(0, kept),
    score: score.subarray(0, kept),
    imgIdx: imgIdx.subarray(0, kept),
    catIdx: catIdx.subarray(0, kept),
    count: kept,
  };
}

/**
 * Stable bucket order by `imgIdx * K + catIdx`: bucket b holds `order[start[b] .. start[b + 1])`
 * in input order. An image's buckets are adjacent and in category order, which is exactly
 * pycocotools' class-agnostic concatenation `[... for cId in catIds for ... in _gts[img, cId]]`.
 */
export function bucketByImageCategory(
  imgIdx: Int32Array,
  catIdx: Int32Array,
  keep: Uint8Array | null,
  numImages: number,
  numCats: number,
): { start: Int32Array; order: Int32Array } {
  const B = numImages * numCats;
  const start = new Int32Array(B + 1);
  const n = imgIdx.length;
  for (let j = 0; j < n; j++) if (!keep || keep[j]) start[imgIdx[j]! * numCats + catIdx[j]! + 1]!++;
  for (let b = 0; b < B; b++) start[b + 1]! += start[b]!;
  const fill = start.slice(0, B);
  const order = new Int32Array(start[B]!);
  for (let j = 0; j < n; j++) {
    if (keep && !keep[j]) continue;
    order[fill[imgIdx[j]! * numCats + catIdx[j]!]!++] = j;
  }
  return { start, order };
}
