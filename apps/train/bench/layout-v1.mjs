// The engine's graph-form policy before the 'flipped' / 'taps' gradient forms (commit a0f647d), for
// timing the engine as it was next to the engine as it is in one process: registered as the four
// convolution kernels, it sends each call to a kernel set built with layout 'nhwc' or 'transpose'
// (those graphs did not change) as that commit's `chooseLayout` did.

import { convGeometry, createOrtKernels, IM2COL_LIMIT } from '@bmc/engine';
import * as tf from '@tensorflow/tfjs';

export const CONV_KERNELS = ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'];
const KIND = {
  Conv2D: 'forward',
  FusedConv2D: 'forward',
  Conv2DBackpropInput: 'backpropInput',
  Conv2DBackpropFilter: 'backpropFilter',
};

/** The geometry and kind of one convolution kernel call (as ort-kernels.ts resolves it). */
export function kernelGeometry(name, inputs, attrs) {
  const kind = KIND[name];
  if (kind === 'backpropInput')
    return {
      kind,
      g: convGeometry(
        attrs.inputShape,
        inputs.filter.shape,
        attrs.strides,
        1,
        attrs.pad,
        attrs.dimRoundingMode,
      ),
    };
  if (kind === 'backpropFilter')
    return {
      kind,
      g: convGeometry(inputs.x.shape, attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode),
    };
  return {
    kind,
    g: convGeometry(
      inputs.x.shape,
      inputs.filter.shape,
      attrs.strides,
      attrs.dilations ?? 1,
      attrs.pad,
      attrs.dimRoundingMode,
    ),
  };
}

/** a0f647d's chooseLayout, verbatim in effect. */
export function chooseLayoutV1(kind, g) {
  const pointwise =
    g.kH === 1 &&
    g.kW === 1 &&
    g.strideH === 1 &&
    g.strideW === 1 &&
    g.padTop + g.padBottom + g.padLeft + g.padRight === 0;
  if (pointwise) return 'nhwc';
  const taps = g.kH * g.kW;
  switch (kind) {
    case 'forward':
      return g.inC >= 16 && g.batch * g.outH * g.outW * taps * g.inC <= IM2COL_LIMIT ? 'nhwc' : 'transpose';
    case 'backpropInput':
      return g.strideH === 1 && g.strideW === 1 && g.batch * g.inH * g.inW * taps * g.outC <= IM2COL_LIMIT
        ? 'nhwc'
        : 'transpose';
    default:
      return g.inC >= 16 && g.batch * g.outH * g.outW * taps * g.inC <= 2 * IM2COL_LIMIT
        ? 'nhwc'
        : 'transpose';
  }
}

/**
 * Registers the a0f647d policy on wasm (create it before any other registration of ours, so that
 * delegated cases reach wasm's own kernels). Returns { unregister } restoring what was there.
 */
export function registerV1Kernels({ threads }) {
  const sets = {
    nhwc: createOrtKernels({ backend: 'wasm', layout: 'nhwc', threads }),
    transpose: createOrtKernels({ backend: 'wasm', layout: 'transpose', threads }),
  };
  const saved = [];
  for (const name of CONV_KERNELS) {
    const fns = Object.fromEntries(
      Object.entries(sets).map(([l, s]) => [l, s.configs.find((c) => c.kernelName === name).kernelFunc]),
    );
    const prev = tf.getKernel(name, 'wasm');
    if (prev) tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      kernelName: name,
      backendName: 'wasm',
      kernelFunc: (args) => {
        const { kind, g } = kernelGeometry(name, args.inputs, args.attrs);
        return fns[chooseLayoutV1(kind, g)](args);
      },
    });
    saved.push([name, prev]);
  }
  return {
    unregister() {
      for (const [name, prev] of saved) {
        tf.unregisterKernel(name, 'wasm');
        if (prev) tf.registerKernel(prev);
      }
      for (const s of Object.values(sets)) s.dispose();
    },
  };
}
