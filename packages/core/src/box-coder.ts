import type { BoxesXYXY, Deltas, NumericArray } from './types.js';
import { boxCount } from './validate.js';

/** torchvision's default clamp on dw/dh: exp(dw) never exceeds 1000/16 (a 16 px anchor growing to 1000 px). */
export const DEFAULT_XFORM_CLIP = Math.log(1000 / 16);

export interface BoxCoderOptions {
  /** Weights `(wx, wy, ww, wh)` that scale the deltas; RetinaNet uses `(1, 1, 1, 1)`. */
  weights?: readonly [number, number, number, number];
  /** Upper clamp applied to dw and dh before `exp` when decoding. */
  xformClip?: number;
}

/**
 * The RetinaNet / Faster R-CNN box parametrisation, with the semantics of
 * torchvision's `BoxCoder`: centre offsets relative to the anchor size and log
 * size ratios, each multiplied by its weight.
 */
export class BoxCoder {
  readonly weights: readonly [number, number, number, number];
  readonly xformClip: number;

  constructor(options: BoxCoderOptions = {}) {
    this.weights = options.weights ?? [1, 1, 1, 1];
    this.xformClip = options.xformClip ?? DEFAULT_XFORM_CLIP;
  }

  /** Deltas `[N, 4]` that move each anchor (`[N, 4]`) onto its target box (`[N, 4]`). */
  encode(targets: NumericArray, anchors: NumericArray): Deltas {
    const n = boxCount(anchors, 'anchors');
    if (boxCount(targets, 'targets') !== n) {
      throw new RangeError(`encode: ${boxCount(targets)} targets for ${n} anchors`);
    }
    const [wx, wy, ww, wh] = this.weights;
    const out = new Float32Array(n * 4);
    for (let i = 0; i < n * 4; i += 4) {
      const aw = anchors[i + 2]! - anchors[i]!;
      const ah = anchors[i + 3]! - anchors[i + 1]!;
      const acx = anchors[i]! + 0.5 * aw;
      const acy = anchors[i + 1]! + 0.5 * ah;
      const tw = targets[i + 2]! - targets[i]!;
      const th = targets[i + 3]! - targets[i + 1]!;
      const tcx = targets[i]! + 0.5 * tw;
      const tcy = targets[i + 1]! + 0.5 * th;
      out[i] = (wx * (tcx - acx)) / aw;
      out[i + 1] = (wy * (tcy - acy)) / ah;
      out[i + 2] = ww * Math.log(tw / aw);
      out[i + 3] = wh * Math.log(th / ah);
    }
    return out;
  }

  /** Boxes `[N, 4]` from deltas `[N, 4]` applied to anchors `[N, 4]`. */
  decode(deltas: NumericArray, anchors: NumericArray): BoxesXYXY {
    const n = boxCount(anchors, 'anchors');
    if (boxCount(deltas, 'deltas') !== n) {
      throw new RangeError(`decode: ${boxCount(deltas)} deltas for ${n} anchors`);
    }
    const out = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) this.decodeRow(deltas, i, anchors, i, out, i);
    return out;
  }

  /**
   * Decodes one row in place into `out` (row `outRow`). Exposed so that
   * post-processing can decode only the few anchors that survive top-k.
   */
  decodeRow(
    deltas: NumericArray,
    deltaRow: number,
    anchors: NumericArray,
    anchorRow: number,
    out: Float32Array,
    outRow: number,
  ): void {
    const [wx, wy, ww, wh] = this.weights;
    const a = anchorRow * 4;
    const d = deltaRow * 4;
    const aw = anchors[a + 2]! - anchors[a]!;
    const ah = anchors[a + 3]! - anchors[a + 1]!;
    const acx = anchors[a]! + 0.5 * aw;
    const acy = anchors[a + 1]! + 0.5 * ah;
    const dx = deltas[d]! / wx;
    const dy = deltas[d + 1]! / wy;
    const dw = Math.min(deltas[d + 2]! / ww, this.xformClip);
    const dh = Math.min(deltas[d + 3]! / wh, this.xformClip);
    const cx = dx * aw + acx;
    const cy = dy * ah + acy;
    const hw = 0.5 * Math.exp(dw) * aw;
    const hh = 0.5 * Math.exp(dh) * ah;
    const o = outRow * 4;
    out[o] = cx - hw;
    out[o + 1] = cy - hh;
    out[o + 2] = cx + hw;
    out[o + 3] = cy + hh;
  }
}
