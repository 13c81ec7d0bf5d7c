import { batchedNms, nms } from '@bmc/core';
import type { BmcMetadata } from '@bmc/export/metadata';
import { MIN_BOX_SIZE } from '@bmc/heads-iou/postprocess';
import { effectiveNms, postprocess, type RawDetections, select } from './postprocess.js';
import { prepareInput } from './preprocess.js';
import { applyPixelScale } from './scale.js';
import { planTiles, type Tile } from './tiling.js';
import type { Detection, DetectOptions, DetectResult, NetworkRunner, RawPixels } from './types.js';

export { DEFAULT_TILE_OVERLAP, DEFAULT_TILE_SIZE } from './scale.js';

const now = () => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * Detects cells in decoded pixels: letterbox + normalise, run the network,
 * post-process, map boxes back to source pixels. The image is scaled as the
 * model's metadata says training scaled it (`applyPixelScale`), unless
 * `options` say otherwise. Images larger than the tile size are processed tile
 * by tile (one tile tensor alive at a time) and the tiles' detections merged
 * with NMS. The same function runs in Node and in the browser, and in the
 * trainer's evaluation; only `run` differs.
 */
export async function detectPixels(
  run: NetworkRunner,
  meta: BmcMetadata,
  image: RawPixels,
  options: DetectOptions = {},
): Promise<DetectResult> {
  const { width, height } = image;
  if (!(width > 0 && height > 0)) throw new RangeError(`detectPixels: empty image ${width}x${height}`);
  const applied = applyPixelScale(meta, options);
  const scale = applied.resizeLongSide ? applied.resizeLongSide / Math.max(width, height) : 1;
  const tileSize = applied.tileSize;
  const overlap = applied.tileOverlap;
  const timings = { preprocessMs: 0, networkMs: 0, postprocessMs: 0 };
  const tiled = tileSize > 0 && Math.max(width, height) * scale > tileSize;
  const tiles: Tile[] = tiled
    ? planTiles(
        width,
        height,
        Math.round(tileSize / scale),
        Math.round(overlap / scale),
        scale === 1 ? meta.input.sizeMultiple : 1,
      )
    : [{ x: 0, y: 0, width, height, coreX0: 0, coreY0: 0, coreX1: width, coreY1: height }];

  const parts: RawDetections[] = [];
  for (const tile of tiles) {
    // A network pass cannot be interrupted, so cancellation is honoured between tiles.
    options.signal?.throwIfAborted();
    let t = now();
    const input = prepareInput(image, meta.input.normalization, meta.input.sizeMultiple, scale, tile);
    timings.preprocessMs += now() - t;
    t = now();
    const out = await run(input.tensor, input.height, input.width);
    timings.networkMs += now() - t;
    t = now();
    const det = postprocess(
      out,
      meta,
      input.height,
      input.width,
      { width: input.contentWidth, height: input.contentHeight },
      options,
    );
    parts.push(toSource(det, tile, input.scale, tiled));
    timings.postprocessMs += now() - t;
  }
  const t = now();
  const merged = tiled ? mergeTiles(parts, meta, options) : parts[0]!;
  timings.postprocessMs += now() - t;
  return { width, height, detections: toDetections(merged, meta), tiles: tiles.length, timings };
}

/**
 * Network pixels of one tile -> source pixels; with tiling, drops detections centred outside the
 * tile's core. Boxes that an upscaled image (a 1 x 1 image resized to the model's side) shrinks
 * below MIN_BOX_SIZE in source pixels are dropped too: every detection has positive area.
 */
function toSource(d: RawDetections, tile: Tile, scale: number, filterCore: boolean): RawDetections {
  const keep: number[] = [];
  const n = d.scores.length;
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    for (let k = 0; k < 4; k++) d.boxes[o + k] = d.boxes[o + k]! / scale + (k % 2 === 0 ? tile.x : tile.y);
    if (!(d.boxes[o + 2]! - d.boxes[o]! > MIN_BOX_SIZE && d.boxes[o + 3]! - d.boxes[o + 1]! > MIN_BOX_SIZE))
      continue;
    const cx = (d.boxes[o]! + d.boxes[o + 2]!) / 2;
    const cy = (d.boxes[o + 1]! + d.boxes[o + 3]!) / 2;
    if (!filterCore || (cx >= tile.coreX0 && cx < tile.coreX1 && cy >= tile.coreY0 && cy < tile.coreY1))
      keep.push(i);
  }
  return keep.length === n ? d : select(d, keep);
}

/** Concatenates tiles' detections and runs NMS once more across tile borders. */
export function mergeTiles(
  parts: RawDetections[],
  meta: BmcMetadata,
  options: DetectOptions = {},
): RawDetections {
  const n = parts.reduce((s, p) => s + p.scores.length, 0);
  const all: RawDetections = {
    boxes: new Float32Array(n * 4),
    scores: new Float32Array(n),
    classes: new Int32Array(n),
  };
  let k = 0;
  for (const p of parts) {
    all.boxes.set(p.boxes, k * 4);
    all.scores.set(p.scores, k);
    all.classes.set(p.classes, k);
    k += p.scores.length;
  }
  const s = effectiveNms(meta, options);
  // A whole image gets maxDetections per tile's worth of area, not per image: a
  // field of thousands of cells must not be cut at the per-pass limit.
  const max = s.maxDetections * parts.length;
  const keep = s.classAgnostic
    ? nms(all.boxes, all.scores, s.iouThreshold).slice(0, max)
    : batchedNms(all.boxes, all.scores, all.classes, { iouThreshold: s.iouThreshold, maxDetections: max });
  return select(all, keep);
}

function toDetections(d: RawDetections, meta: BmcMetadata): Detection[] {
  const out: Detection[] = [];
  for (let i = 0; i < d.scores.length; i++) {
    const o = i * 4;
    const c = d.classes[i]!;
    out.push({
      box: [d.boxes[o]!, d.boxes[o + 1]!, d.boxes[o + 2]!, d.boxes[o + 3]!],
      score: d.scores[i]!,
      classId: c,
      className: meta.classNames[c] ?? String(c),
    });
  }
  return out;
}
