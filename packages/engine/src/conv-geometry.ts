/**
 * One 2-D convolution's geometry with TensorFlow's padding already resolved to
 * explicit amounts. TensorFlow's 'same' puts the odd pixel at the bottom/right
 * (pad total = max((out-1)*stride + (k-1)*dilation + 1 - in, 0), top = floor(total/2)),
 * which ONNX's symmetric `pads` cannot express implicitly: every ONNX graph here
 * gets explicit `[top, left, bottom, right]` pads taken from tfjs' own
 * `computeConv2DInfo`, so both sides agree by construction.
 */
import { backend_util } from '@tensorflow/tfjs-core';

/** tfjs' `pad` attribute: 'same', 'valid', or explicit `[[0,0],[top,bottom],[left,right],[0,0]]` (NHWC). */
export type TfPad =
  | 'same'
  | 'valid'
  | number
  | [[number, number], [number, number], [number, number], [number, number]];

export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  dilH: number;
  dilW: number;
  padTop: number;
  padBottom: number;
  padLeft: number;
  padRight: number;
}

/**
 * Resolves geometry for NHWC input `[N, H, W, Cin]` and HWIO filter `[KH, KW, Cin, Cout]`.
 * Throws tfjs' own errors for inconsistent shapes.
 */
export function convGeometry(
  xShape: readonly number[],
  filterShape: readonly number[],
  strides: number | [number, number],
  dilations: number | [number, number],
  pad: TfPad,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): ConvGeometry {
  const info = backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    dilations,
    pad as 'same',
    dimRoundingMode,
  );
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    dilH: info.dilationHeight,
    dilW: info.dilationWidth,
    padTop: info.padInfo.top,
    padBottom: info.padInfo.bottom,
    padLeft: info.padInfo.left,
    padRight: info.padInfo.right,
  };
}

/** A stable text key for session caches. */
export function geometryKey(g: ConvGeometry): string {
  return [
    g.batch,
    g.inH,
    g.inW,
    g.inC,
    g.outH,
    g.outW,
    g.outC,
    g.kH,
    g.kW,
    g.strideH,
    g.strideW,
    g.dilH,
    g.dilW,
    g.padTop,
    g.padBottom,
    g.padLeft,
    g.padRight,
  ].join(',');
}

/** True for a 1x1, stride-1, unpadded convolution: a plain matrix product over channels. */
export function isPointwise(g: ConvGeometry): boolean {
  return (
    g.kH === 1 &&
    g.kW === 1 &&
    g.strideH === 1 &&
    g.strideW === 1 &&
    g.padTop + g.padBottom + g.padLeft + g.padRight === 0
  );
}
