/**
 * Boxes `[N, 4]`, row-major, each row `x1, y1, x2, y2` in input pixels.
 * `x2 >= x1` and `y2 >= y1` for valid boxes; a zero-width or zero-height box
 * is degenerate but legal (its area is 0).
 */
export type BoxesXYXY = Float32Array;
/** Boxes `[N, 4]`, each row `x, y, w, h` (COCO's layout; x, y the top-left corner). */
export type BoxesXYWH = Float32Array;
/** Boxes `[N, 4]`, each row `cx, cy, w, h`. */
export type BoxesCXCYWH = Float32Array;
/** Regression targets `[N, 4]`, each row `dx, dy, dw, dh` (torchvision `BoxCoder` layout). */
export type Deltas = Float32Array;
/** A dense row-major matrix `[rows, cols]` of float32 values. */
export interface Matrix {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

/** Any typed array or plain array of numbers that a function only reads. */
export type NumericArray = ArrayLike<number>;
