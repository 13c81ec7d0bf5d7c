/**
 * pycocotools' `bbIou` (maskApi.c), operation for operation in float64, so that IoU
 * values sitting exactly on a threshold compare the same way. Boxes are `[x, y, w, h]`;
 * the right edge is `x + w` computed here, as in C. Against a crowd ground truth the
 * union is the detection's own area (the fraction of the detection inside the crowd).
 * Out `[D, G]` row-major: `out[d * G + g]`.
 *
 * `@bmc/core`'s `boxIou` is float32 on xyxy boxes, which rounds differently; hence this copy.
 */
export function cocoBboxIou(
  dt: Float64Array,
  dtIdx: ArrayLike<number>,
  gt: Float64Array,
  gtIdx: ArrayLike<number>,
  gtCrowd: Uint8Array,
  out: Float64Array,
): void {
  const D = dtIdx.length;
  const G = gtIdx.length;
  for (let g = 0; g < G; g++) {
    const gi = 4 * gtIdx[g]!;
    const gx = gt[gi]!;
    const gy = gt[gi + 1]!;
    const gw = gt[gi + 2]!;
    const gh = gt[gi + 3]!;
    const ga = gw * gh;
    const gx2 = gw + gx;
    const gy2 = gh + gy;
    const crowd = gtCrowd[gtIdx[g]!] === 1;
    for (let d = 0; d < D; d++) {
      const di = 4 * dtIdx[d]!;
      const dx = dt[di]!;
      const dy = dt[di + 1]!;
      const dw = dt[di + 2]!;
      const dh = dt[di + 3]!;
      out[d * G + g] = 0;
      const w = Math.min(dw + dx, gx2) - Math.max(dx, gx);
      if (w <= 0) continue;
      const h = Math.min(dh + dy, gy2) - Math.max(dy, gy);
      if (h <= 0) continue;
      const da = dw * dh;
      const i = w * h;
      const u = crowd ? da : da + ga - i;
      out[d * G + g] = i / u;
    }
  }
}
