/**
 * Types shared by the CLI, the service and the browser viewer. Nothing here (or
 * anywhere under src/pipeline) may import a Node module: the viewer bundles it.
 */

/** Decoded 8-bit pixels, row-major `[H, W, channels]`; RGB (3) or RGBA (4, alpha ignored). */
export interface RawPixels {
  readonly data: Uint8Array | Uint8ClampedArray;
  readonly width: number;
  readonly height: number;
  readonly channels: 3 | 4;
}

/** One detected cell, in the original image's pixels. */
export interface Detection {
  /** `[x1, y1, x2, y2]`. */
  readonly box: [number, number, number, number];
  /** The ranking score (the model's score mode), 0..1. */
  readonly score: number;
  readonly classId: number;
  readonly className: string;
}

export interface DetectTimings {
  preprocessMs: number;
  networkMs: number;
  postprocessMs: number;
}

export interface DetectResult {
  readonly width: number;
  readonly height: number;
  /** Highest score first. */
  readonly detections: Detection[];
  /** How many network passes (1 unless the image was tiled). */
  readonly tiles: number;
  readonly timings: DetectTimings;
}

/** The three network outputs for one image, anchor order (level, y, x, anchor). */
export interface HeadOutputs {
  /** `[A, C]` class logits. */
  readonly clsLogits: Float32Array;
  /** `[A, 4]` deltas (dx, dy, dw, dh). */
  readonly boxDeltas: Float32Array;
  /** `[A]` IoU logits, absent for a plain RetinaNet. */
  readonly iouLogits?: Float32Array;
}

/**
 * Runs the network on one NCHW float32 batch `[1, 3, H, W]`. Node passes an
 * onnxruntime-node session, the browser an onnxruntime-web one; everything
 * around this call is the same code.
 */
export type NetworkRunner = (input: Float32Array, height: number, width: number) => Promise<HeadOutputs>;

/** Per-call overrides of the model's post-processing settings. */
export interface PostprocessOverrides {
  scoreThreshold?: number;
  iouThreshold?: number;
  maxDetections?: number;
  topK?: number;
}

export interface DetectOptions extends PostprocessOverrides {
  /**
   * Resize so the longer side is this many pixels before detection; 0: source
   * resolution. Default: the model's recorded pixel scale (`meta.pixelScale`:
   * the training side for letterbox models, none for native ones), none for
   * models that record no scale.
   */
  resizeLongSide?: number;
  /**
   * Images whose longer side (after any resize) exceeds this are split into
   * overlapping tiles of this size; 0 disables tiling. Default: the training
   * crop of a native model, otherwise 1024.
   */
  tileSize?: number;
  /**
   * Overlap between neighbouring tiles in pixels; should exceed the largest cell.
   * Default 128, or a quarter of the tile size when that is smaller.
   */
  tileOverlap?: number;
  /**
   * Checked before each tile: once aborted, detection stops there and rejects with
   * the signal's reason (the service cancels work whose request was abandoned).
   */
  signal?: AbortSignal;
}
