/**
 * Pure-wasm Conv2DBackpropFilter, built from kernels tfjs-backend-wasm has
 * (it ships none of its own, so training convolutions on wasm fails without it).
 *
 * dw[kh,kw,ci,co] = sum_{n,y,x} x[n, y*s + kh - pt, x*s + kw - pl, ci] * dy[n,y,x,co]
 * is a convolution in which the batch is contracted: `x` transposed to
 * `[Cin, H, W, N]` (batch = Cin, channels = N) correlated with `dy` as an HWIO
 * filter `[OH, OW, N, Cout]`, with the forward stride as dilation. The result
 * `[Cin, KH', KW', Cout]` has KH' >= KH rows when the forward conv dropped
 * trailing rows; it is cropped and transposed to HWIO.
 * (Borrowing Conv3DBackpropFilterV2 on 5-D views drops taps for stride > 1.)
 */
import {
  Conv2DBackpropFilter,
  type KernelBackend,
  type KernelConfig,
  type KernelFunc,
  type NamedTensorInfoMap,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { convGeometry, type TfPad } from './conv-geometry.js';

/** The wasm kernels this one is composed of (captured when registering, so ours never recurse). */
export interface WasmBuildingBlocks {
  conv2d: KernelFunc;
  transpose: KernelFunc;
  slice: KernelFunc;
}

export function makeWasmFilterGrad(k: WasmBuildingBlocks, backendName = 'wasm'): KernelConfig {
  const kernelFunc: KernelFunc = (a) => {
    const { inputs, attrs, backend } = a as {
      inputs: NamedTensorInfoMap;
      attrs: unknown;
      backend: KernelBackend;
    };
    const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
    const at = attrs as {
      strides: number | [number, number];
      pad: TfPad;
      dataFormat?: string;
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
      filterShape: [number, number, number, number];
    };
    if ((at.dataFormat ?? 'NHWC') !== 'NHWC') {
      throw new Error(`@bmc/engine: wasm Conv2DBackpropFilter supports NHWC only, got ${at.dataFormat}`);
    }
    const g = convGeometry(x.shape, at.filterShape, at.strides, 1, at.pad, at.dimRoundingMode);
    const call = (f: KernelFunc, ins: NamedTensorInfoMap, as: object) =>
      f({ inputs: ins, attrs: as as never, backend }) as TensorInfo;
    const free = (t: TensorInfo) => backend.disposeData(t.dataId);

    const xt = call(k.transpose, { x }, { perm: [3, 1, 2, 0] });
    const dyt = call(k.transpose, { x: dy }, { perm: [1, 2, 0, 3] });
    const full = call(
      k.conv2d,
      { x: xt, filter: dyt },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [g.padTop, g.padBottom],
          [g.padLeft, g.padRight],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [g.strideH, g.strideW],
      },
    );
    free(xt);
    free(dyt);
    let cropped = full;
    if (full.shape[1] !== g.kH || full.shape[2] !== g.kW) {
      cropped = call(k.slice, { x: full }, { begin: [0, 0, 0, 0], size: [g.inC, g.kH, g.kW, g.outC] });
      free(full);
    }
    const dw = call(k.transpose, { x: cropped }, { perm: [1, 2, 0, 3] });
    free(cropped);
    return dw;
  };
  return { kernelName: Conv2DBackpropFilter, backendName, kernelFunc };
}
