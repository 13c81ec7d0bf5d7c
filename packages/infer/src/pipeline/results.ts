import type { Detection } from './types.js';

/** One entry of a COCO results file (`loadRes` format): bbox `[x, y, w, h]`, category ids 1-based. */
export interface CocoResult {
  image_id: number;
  category_id: number;
  bbox: [number, number, number, number];
  score: number;
}

/** Two decimals of a pixel are far below any annotation's precision and keep files small. */
const r2 = (v: number) => Math.round(v * 100) / 100;
const r4 = (v: number) => Math.round(v * 1e4) / 1e4;

/** COCO results for one image; category ids are classId + 1 (COCO reserves 0). */
export function toCocoResults(detections: readonly Detection[], imageId: number): CocoResult[] {
  return detections.map((d) => ({
    image_id: imageId,
    category_id: d.classId + 1,
    bbox: [r2(d.box[0]), r2(d.box[1]), r2(d.box[2] - d.box[0]), r2(d.box[3] - d.box[1])],
    score: r4(d.score),
  }));
}

/** Number of detections per class name (every class present, zeros included). */
export function countByClass(
  detections: readonly Detection[],
  classNames: readonly string[],
): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(classNames.map((c) => [c, 0]));
  for (const d of detections) counts[d.className] = (counts[d.className] ?? 0) + 1;
  return counts;
}

/** The JSON the service answers and the viewer downloads. */
export interface DetectionJson {
  image: { width: number; height: number; name?: string };
  model: { name?: string; version: string; classNames: readonly string[]; scoreMode: string };
  count: number;
  counts: Record<string, number>;
  detections: Array<{
    box: [number, number, number, number];
    score: number;
    classId: number;
    className: string;
  }>;
  tiles: number;
  timings: { preprocessMs: number; networkMs: number; postprocessMs: number };
}

/** The service's and viewer's JSON for one image. */
export function toDetectionJson(
  result: import('./types.js').DetectResult,
  meta: import('@bmc/export/metadata').BmcMetadata,
  name?: string,
): DetectionJson {
  const modelName = typeof meta.model?.name === 'string' ? meta.model.name : undefined;
  return {
    image: { width: result.width, height: result.height, ...(name !== undefined ? { name } : {}) },
    model: {
      ...(modelName ? { name: modelName } : {}),
      version: meta.version,
      classNames: meta.classNames,
      scoreMode: meta.scoreMode,
    },
    count: result.detections.length,
    counts: countByClass(result.detections, meta.classNames),
    detections: result.detections.map((d) => ({
      box: d.box,
      score: d.score,
      classId: d.classId,
      className: d.className,
    })),
    tiles: result.tiles,
    timings: result.timings,
  };
}
