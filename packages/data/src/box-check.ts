import type { Validator } from './validation.js';

export interface BoxCheckOptions {
  /** Boxes narrower or lower than this (pixels) are a problem (dropped under `lenient`). Default 0. */
  readonly minBoxSize?: number;
  /**
   * Overshoot past the image border (pixels) that is clipped without a report: float rounding in
   * normalised formats and VOC's inclusive `xmax = width` are not user errors. Default 0.5.
   */
  readonly tolerance?: number;
}

/**
 * Validates one xyxy box against an image of `width` x `height`. Returns the (possibly clipped)
 * box, or `undefined` when lenient mode drops it. Strict mode throws on the first problem.
 */
export function checkBox(
  v: Validator,
  file: string,
  where: string,
  box: [number, number, number, number],
  width: number,
  height: number,
  opts: BoxCheckOptions = {},
): [number, number, number, number] | undefined {
  const tol = opts.tolerance ?? 0.5;
  const minSize = opts.minBoxSize ?? 0;
  let [x1, y1, x2, y2] = box;
  if (!box.every(Number.isFinite)) {
    v.problem(file, where, `box has a non-finite coordinate [${box.join(', ')}]`, 'dropped-box');
    return undefined;
  }
  if (x2 - x1 <= 0 || y2 - y1 <= 0) {
    v.problem(
      file,
      where,
      `box has zero or negative size (w=${fmt(x2 - x1)}, h=${fmt(y2 - y1)}) [${box.map(fmt).join(', ')}]`,
      'dropped-box',
    );
    return undefined;
  }
  const out = x1 < -tol || y1 < -tol || x2 > width + tol || y2 > height + tol;
  if (out) {
    const inside = x2 > 0 && y2 > 0 && x1 < width && y1 < height;
    v.problem(
      file,
      where,
      `box [${box.map(fmt).join(', ')}] lies ${inside ? 'partly ' : ''}outside the ${width}x${height} image`,
      inside ? 'clipped' : 'dropped-box',
    );
    if (!inside) return undefined;
  }
  x1 = Math.min(Math.max(x1, 0), width);
  y1 = Math.min(Math.max(y1, 0), height);
  x2 = Math.min(Math.max(x2, 0), width);
  y2 = Math.min(Math.max(y2, 0), height);
  if (x2 - x1 < minSize || y2 - y1 < minSize) {
    v.problem(
      file,
      where,
      `box ${fmt(x2 - x1)}x${fmt(y2 - y1)} px is smaller than minBoxSize ${minSize}`,
      'dropped-box',
    );
    return undefined;
  }
  return [x1, y1, x2, y2];
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(3).replace(/0+$/, '');
}
