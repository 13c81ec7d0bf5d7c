/**
 * Single-purpose ONNX graphs for the tfjs convolution family, in tfjs layouts:
 * activations NHWC `[N, H, W, C]`, filters HWIO `[KH, KW, Cin, Cout]`.
 *
 * Two ways to meet ONNX's NCHW operators:
 * - 'transpose': Transpose nodes around Conv / ConvTranspose (ORT's MLAS NCHW kernels).
 * - 'nhwc': no layout change at all. The convolution becomes a matrix product
 *   over an im2col matrix built by strided Slices + Concat on the NHWC tensor,
 *   `[N*OH*OW, KH*KW*Cin]`, whose column order (kh, kw, cin) is exactly HWIO's
 *   flattening, so filters and filter gradients need no transpose either.
 *   1x1 stride-1 convolutions are a MatMul straight away. The input gradient
 *   of a stride-1 conv is the same im2col GEMM on dy with the filter flipped;
 *   a strided one has no cheap NHWC form (col2im) and uses ConvTranspose
 *   between transposes in both modes.
 * Two forms for one gradient each:
 * - 'flipped' (input gradient, stride 1): MLAS's NCHW `Conv` of dy with the
 *   filter flipped in space and its channels swapped, between transposes.
 * - 'taps' (filter gradient): one `Gemm` per filter tap over the strided slice
 *   of the padded input that tap reads, concatenated to HWIO.
 * - 'nchwc' (forward, the stride-1 input gradient as 'flipped' does it, and a strided
 *   input gradient as one stride-1 convolution per sub-pixel phase): MLAS's
 *   blocked-channel direct convolution (onnxruntime's `com.microsoft.nchwc` `Conv`,
 *   AVX2 / AVX-512 kernels with no im2col), fed from NHWC by `ReorderInput` and back by
 *   `ReorderOutput`, the filter reordered in the graph to MLAS's OIHWBiBo blocks.
 * Where a form does not apply to a kernel, the kernel uses 'transpose' (the
 * forward for both, the input gradient of strided 'flipped'), 'flipped' (an input
 * gradient 'nchwc' cannot take) or the GEMM of 'nhwc' (a pointwise filter gradient
 * for 'taps'; 'nchwc' has no filter-gradient form and uses 'taps').
 */
import type { ConvGeometry } from './conv-geometry.js';
import { isPointwise } from './conv-geometry.js';
import type { OnnxGraph, OnnxNode } from './onnx-model.js';

export type ConvLayout = 'transpose' | 'nhwc' | 'flipped' | 'taps' | 'nchwc';

/** 'auto' picks per kernel call from the geometry ({@link chooseLayout}). */
export type LayoutOption = ConvLayout | 'auto';

export type ConvKernelKind = 'forward' | 'backpropInput' | 'backpropFilter';

/**
 * Above this many im2col elements (floats), the whole-tensor im2col of the
 * NHWC form is memory-bound and MLAS's own tiled NCHW convolution (behind two
 * transposes) wins; below it the transposes cost more than they save.
 * Measured on the 2-core dev machine (AMD EPYC, AVX2): 2.4 M (nhwc faster) .. 4.7 M (transpose faster).
 */
export const IM2COL_LIMIT = 3_500_000;

/**
 * The faster graph form for one kernel call, from measurements (README):
 * pointwise convolutions are always a GEMM; forward and input gradient use
 * NHWC im2col while it stays small; above that the forward runs on MLAS's
 * NCHW convolution and a stride-1 input gradient on the same kernel with the
 * filter flipped ('flipped'; strided ones on ConvTranspose). The filter
 * gradient is one GEMM per filter tap ('taps') unless the input has very few
 * channels (the RGB stem: 49 taps of 3 channels make tiny GEMMs), where the
 * batch-as-channels convolution wins.
 * `nchwcBlock` is MLAS's NCHWc block size on this CPU (16 with AVX-512, 8 with AVX2;
 * {@link nchwcApplies}); when given (> 1), the forward and the input gradient (strided
 * ones as sub-pixel phases, which beat ConvTranspose) take MLAS's direct NCHWc
 * convolution on maps of at least {@link NCHWC_MIN_POSITIONS} output positions, where it
 * beat both im2col forms.
 */
export function chooseLayout(kind: ConvKernelKind, g: ConvGeometry, nchwcBlock = 1): ConvLayout {
  if (isPointwise(g)) return 'nhwc';
  const taps = g.kH * g.kW;
  switch (kind) {
    case 'forward':
      if (nchwcApplies(kind, g, nchwcBlock) && g.batch * g.outH * g.outW >= NCHWC_MIN_POSITIONS)
        return 'nchwc';
      return g.inC >= 16 && g.batch * g.outH * g.outW * taps * g.inC <= IM2COL_LIMIT ? 'nhwc' : 'transpose';
    case 'backpropInput':
      if (nchwcApplies(kind, g, nchwcBlock) && g.batch * g.inH * g.inW >= NCHWC_MIN_POSITIONS) return 'nchwc';
      if (isStrided(g)) return 'transpose';
      return g.batch * g.inH * g.inW * taps * g.outC <= IM2COL_LIMIT ? 'nhwc' : 'flipped';
    case 'backpropFilter':
      return g.inC >= 16 ? 'taps' : 'transpose';
  }
}

/**
 * Output positions (N*H*W of the map a convolution writes) from which 'auto' prefers
 * the NCHWc convolution. Measured on the 2-core AVX-512 EPYC, 1 thread, CPU time:
 * 3x3 256->256 at 128x128 229 -> 198 ms (forward), 227 -> 189 ms (input gradient);
 * at 64x64 58 -> 48 and 60 -> 51; at 32x32 on par; 512->512 at 16x16 slower (16 -> 21).
 */
export const NCHWC_MIN_POSITIONS = 4096;

/**
 * Output positions per band of the 'taps' filter gradient (rows of the map, all images).
 * Measured (1 thread, CPU time, AVX-512 EPYC), 3x3 256->256: at 128x128 one band 310 ms, bands of
 * 4 / 8 / 16 / 32 rows 252 / 224 / 228 / 265 ms; at 64x64 65 ms, 8 / 16 rows 64 / 59 ms.
 */
export const TAPS_BAND_POSITIONS = 1024;

/**
 * Whether the 'nchwc' form can run this call: MLAS has NCHWc kernels (`block` > 1),
 * the convolution is not pointwise, the channels the NCHWc convolution reads are a
 * multiple of the block (its output channels are padded to one), and an input
 * gradient is of a stride-1 convolution with a flipped geometry or of a strided one
 * without dilation (sub-pixel phases).
 */
export function nchwcApplies(kind: ConvKernelKind, g: ConvGeometry, block: number): boolean {
  if (block <= 1 || isPointwise(g)) return false;
  if (kind === 'forward') return g.inC % block === 0;
  if (kind === 'backpropInput')
    return (
      g.outC % block === 0 && (flippedGeometry(g) !== null || (isStrided(g) && g.dilH === 1 && g.dilW === 1))
    );
  return false;
}

/** Activations FusedConv2D can carry natively; others run through the backend's own kernel. */
export type NativeActivation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'elu' | 'leakyrelu';

export const NATIVE_ACTIVATIONS: readonly string[] = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'elu',
  'leakyrelu',
];

/** onnxruntime's contrib domain of MLAS's blocked-channel (NCHWc) kernels. */
export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const isStrided = (g: ConvGeometry) => g.strideH !== 1 || g.strideW !== 1;

const NHWC_TO_NCHW = [0, 3, 1, 2];
const NCHW_TO_NHWC = [0, 2, 3, 1];
const HWIO_TO_OIHW = [3, 2, 0, 1];

class GraphBuilder {
  nodes: OnnxNode[] = [];
  ints: Record<string, readonly number[]> = {};
  floats: Record<string, number> = {};
  private n = 0;

  fresh(prefix: string): string {
    this.n += 1;
    return `${prefix}_${this.n}`;
  }

  node(op: string, inputs: string[], attrs?: OnnxNode['attrs'], out?: string): string {
    const o = out ?? this.fresh(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [o], ...(attrs ? { attrs } : {}) });
    return o;
  }

  constInts(values: readonly number[]): string {
    const name = this.fresh('c');
    this.ints[name] = values;
    return name;
  }

  constFloat(value: number): string {
    const name = this.fresh('f');
    this.floats[name] = value;
    return name;
  }

  transpose(x: string, perm: readonly number[], out?: string): string {
    return this.node('Transpose', [x], { perm: { ints: perm } }, out);
  }

  reshape(x: string, shape: readonly number[], out?: string): string {
    return this.node('Reshape', [x, this.constInts(shape)], undefined, out);
  }

  activation(x: string, act: NativeActivation, alpha: number, out?: string): string {
    switch (act) {
      case 'linear':
        return out ? this.node('Identity', [x], undefined, out) : x;
      case 'relu':
        return this.node('Relu', [x], undefined, out);
      case 'relu6':
        return this.node('Clip', [x, this.constFloat(0), this.constFloat(6)], undefined, out);
      case 'sigmoid':
        return this.node('Sigmoid', [x], undefined, out);
      case 'elu':
        return this.node('Elu', [x], { alpha: { float: 1 } }, out);
      case 'leakyrelu':
        return this.node('LeakyRelu', [x], { alpha: { float: alpha } }, out);
    }
  }

  /**
   * im2col on an NHWC tensor: `[N, OH, OW, KH*KW*C]`, columns ordered (kh, kw, c)
   * like a flattened HWIO filter.
   */
  im2col(x: string, g: ConvGeometry, reverseTaps = false): string {
    const patches = this.tapSlices(x, g, reverseTaps);
    return patches.length === 1 ? patches[0]! : this.node('Concat', patches, { axis: { int: 3 } });
  }

  /** The padded input's strided window per filter tap, `[N, OH, OW, C]` each, in (kh, kw) order. */
  tapSlices(x: string, g: ConvGeometry, reverseTaps = false): string[] {
    let xp = x;
    if (g.padTop + g.padBottom + g.padLeft + g.padRight > 0) {
      xp = this.node('Pad', [x, this.constInts([0, g.padTop, g.padLeft, 0, 0, g.padBottom, g.padRight, 0])]);
    }
    const patches: string[] = [];
    const axes = this.constInts([1, 2]);
    const steps = this.constInts([g.strideH, g.strideW]);
    for (let kh = 0; kh < g.kH; kh++) {
      for (let kw = 0; kw < g.kW; kw++) {
        const h0 = (reverseTaps ? g.kH - 1 - kh : kh) * g.dilH;
        const w0 = (reverseTaps ? g.kW - 1 - kw : kw) * g.dilW;
        const starts = this.constInts([h0, w0]);
        const ends = this.constInts([h0 + (g.outH - 1) * g.strideH + 1, w0 + (g.outW - 1) * g.strideW + 1]);
        patches.push(this.node('Slice', [xp, starts, ends, axes, steps]));
      }
    }
    return patches;
  }

  /** Zero-pads one axis of a `rank`-D tensor at its end by `extra` (no node when 0). */
  padLastAxis(x: string, rank: number, extra: number, axis = rank - 1): string {
    if (extra === 0) return x;
    const pads = new Array<number>(2 * rank).fill(0);
    pads[rank + axis] = extra;
    return this.node('Pad', [x, this.constInts(pads)]);
  }

  /** NHWC -> NCHWc (channels padded to the block by onnxruntime). */
  reorderInput(x: string): string {
    return this.domainNode('ReorderInput', [x], { channels_last: { int: 1 } });
  }

  /** NCHWc -> NHWC with `channels` channels (the block padding dropped). */
  reorderOutput(x: string, channels: number, out?: string): string {
    return this.domainNode(
      'ReorderOutput',
      [x],
      { channels: { int: channels }, channels_last: { int: 1 } },
      out,
    );
  }

  nchwcConv(x: string, w: string, bias: string | undefined, g: ConvGeometry, relu: boolean): string {
    return this.domainNode('Conv', bias ? [x, w, bias] : [x, w], {
      ...convAttrs(g),
      ...(relu ? { activation: { string: 'Relu' } } : {}),
    });
  }

  private domainNode(op: string, inputs: string[], attrs: OnnxNode['attrs'], out?: string): string {
    const o = out ?? this.fresh(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [o], attrs, domain: NCHWC_DOMAIN });
    return o;
  }

  build(inputs: OnnxGraph['inputs'], outputs: OnnxGraph['outputs']): OnnxGraph {
    return { inputs, outputs, nodes: this.nodes, int64Constants: this.ints, floatScalars: this.floats };
  }
}

/** `w` (spatial axes 2 and 3, `g.kH` x `g.kW`) reversed in space: a Slice with step -1. */
function reverseSpatial(b: GraphBuilder, w: string, g: ConvGeometry): string {
  return b.node('Slice', [
    w,
    b.constInts([-1, -1]),
    b.constInts([-(g.kH + 1), -(g.kW + 1)]),
    b.constInts([2, 3]),
    b.constInts([-1, -1]),
  ]);
}

function convAttrs(g: ConvGeometry): OnnxNode['attrs'] {
  return {
    kernel_shape: { ints: [g.kH, g.kW] },
    strides: { ints: [g.strideH, g.strideW] },
    dilations: { ints: [g.dilH, g.dilW] },
    pads: { ints: [g.padTop, g.padLeft, g.padBottom, g.padRight] },
  };
}

const xShape = (g: ConvGeometry) => [g.batch, g.inH, g.inW, g.inC];
const yShape = (g: ConvGeometry) => [g.batch, g.outH, g.outW, g.outC];
const wShape = (g: ConvGeometry) => [g.kH, g.kW, g.inC, g.outC];

export interface ForwardOptions {
  layout: ConvLayout;
  bias: boolean;
  activation: NativeActivation;
  leakyreluAlpha?: number;
  /** MLAS's NCHWc block size, needed by the 'nchwc' layout (falls back to 'transpose' without). */
  nchwcBlock?: number;
}

/** Conv2D / FusedConv2D: inputs `x` NHWC, `w` HWIO, optional `b` `[Cout]`; output `y` NHWC. */
export function forwardGraph(g: ConvGeometry, o: ForwardOptions): OnnxGraph {
  const b = new GraphBuilder();
  const alpha = o.leakyreluAlpha ?? 0.2;
  if (o.layout === 'nchwc' && nchwcApplies('forward', g, o.nchwcBlock ?? 1)) {
    const block = o.nchwcBlock!;
    const outP = roundUp(g.outC, block);
    // HWIO [KH, KW, Cin, Cout] -> OIHWBiBo: [Cout/B, Cin/B, KH, KW, Bi, Bo].
    const wp = b.padLastAxis('w', 4, outP - g.outC);
    const w6 = b.reshape(wp, [g.kH, g.kW, g.inC / block, block, outP / block, block]);
    const wb = b.reshape(b.transpose(w6, [4, 2, 0, 1, 3, 5]), [outP, g.inC, g.kH, g.kW]);
    const bias = o.bias ? b.padLastAxis('b', 1, outP - g.outC) : undefined;
    // ReLU runs inside the NCHWc convolution; other activations on its NHWC output.
    const relu = o.activation === 'relu';
    const yc = b.nchwcConv(b.reorderInput('x'), wb, bias, g, relu);
    if (relu || o.activation === 'linear') b.reorderOutput(yc, g.outC, 'y');
    else b.activation(b.reorderOutput(yc, g.outC), o.activation, alpha, 'y');
  } else if (o.layout === 'nhwc') {
    const cols = isPointwise(g) ? 'x' : b.im2col('x', g);
    const w2 = b.reshape('w', [g.kH * g.kW * g.inC, g.outC]);
    let y = b.node('MatMul', [cols, w2]);
    if (o.bias) y = b.node('Add', [y, 'b']);
    b.activation(y, o.activation, alpha, 'y');
  } else {
    const xt = b.transpose('x', NHWC_TO_NCHW);
    const wt = b.transpose('w', HWIO_TO_OIHW);
    let yt = b.node('Conv', o.bias ? [xt, wt, 'b'] : [xt, wt], convAttrs(g));
    yt = b.activation(yt, o.activation, alpha);
    b.transpose(yt, NCHW_TO_NHWC, 'y');
  }
  const inputs = [
    { name: 'x', shape: xShape(g) },
    { name: 'w', shape: wShape(g) },
  ];
  if (o.bias) inputs.push({ name: 'b', shape: [g.outC] });
  return b.build(inputs, [{ name: 'y', shape: yShape(g) }]);
}

/**
 * Conv2DBackpropInput: inputs `dy` NHWC `[N, OH, OW, Cout]`, `w` HWIO; output `dx` NHWC.
 * ConvTranspose's weight layout `[C_in_of_transpose = Cout, Cin, KH, KW]` is the
 * forward OIHW filter, and `output_padding` restores the rows a strided forward
 * conv dropped (`< stride` by construction).
 */
export function backpropInputGraph(g: ConvGeometry, layout: ConvLayout, nchwcBlock = 1): OnnxGraph {
  const b = new GraphBuilder();
  if (layout === 'nchwc' && nchwcApplies('backpropInput', g, nchwcBlock) && !flippedGeometry(g)) {
    phasedInputGradient(b, g, nchwcBlock);
  } else if (layout === 'nchwc' && nchwcApplies('backpropInput', g, nchwcBlock)) {
    // 'flipped' on MLAS's NCHWc convolution: dy (Cout channels) is the input, the filter is
    // HWIO [KH, KW, Cin, Cout] taken as OIHW [Cin, Cout, KH, KW] of the flipped conv, reversed
    // in space, in OIHWBiBo blocks [Cin/B, Cout/B, KH, KW, Bi (Cout), Bo (Cin)].
    const f = flippedGeometry(g)!;
    const block = nchwcBlock;
    const inP = roundUp(g.inC, block);
    const wp = b.padLastAxis('w', 4, inP - g.inC, 2);
    const w6 = b.reshape(wp, [g.kH, g.kW, inP / block, block, g.outC / block, block]);
    const wt = b.transpose(w6, [2, 4, 0, 1, 5, 3]);
    const wf = reverseSpatial(b, wt, g);
    const wb = b.reshape(wf, [inP, g.outC, g.kH, g.kW]);
    const dxc = b.nchwcConv(b.reorderInput('dy'), wb, undefined, f, false);
    b.reorderOutput(dxc, g.inC, 'dx');
  } else if (layout === 'nhwc' && isPointwise(g)) {
    const dy2 = b.reshape('dy', [g.batch * g.outH * g.outW, g.outC]);
    const w2 = b.reshape('w', [g.inC, g.outC]);
    const dx2 = b.node('Gemm', [dy2, w2], { transB: { int: 1 } });
    b.reshape(dx2, xShape(g), 'dx');
  } else if (layout === 'nhwc' && flippedGeometry(g)) {
    // Stride 1: dx is a plain correlation of dy (re-padded) with the filter
    // flipped in space and transposed in channels. Taking dy's patches in
    // reverse tap order does the flip; a Gemm with transB does the channel
    // transpose, so the filter only needs a row-block permutation to
    // [Cin, KH, KW, Cout] (contiguous Cout rows, cheap).
    const f = flippedGeometry(g)!;
    const rows = g.batch * g.inH * g.inW;
    const cols = b.reshape(b.im2col('dy', f, true), [rows, g.kH * g.kW * g.outC]);
    const wt = b.reshape(b.transpose('w', [2, 0, 1, 3]), [g.inC, g.kH * g.kW * g.outC]);
    const dx2 = b.node('Gemm', [cols, wt], { transB: { int: 1 } });
    b.reshape(dx2, xShape(g), 'dx');
  } else if ((layout === 'flipped' || layout === 'nchwc') && flippedGeometry(g)) {
    // Stride 1 on MLAS's own convolution (tiled im2col + GEMM, as fast as the forward pass):
    // dx = correlate(pad(dy), w flipped in space with in/out channels swapped). ConvTranspose
    // instead materialises the whole [Cin*KH*KW, H*W] column matrix and folds it back with a
    // single-threaded col2im, which is what made the input gradient 3x slower than the forward.
    const f = flippedGeometry(g)!;
    const dyt = b.transpose('dy', NHWC_TO_NCHW);
    // HWIO [KH, KW, Cin, Cout] -> [Cin, Cout, KH, KW] (OIHW of the flipped conv), then reversed in space.
    const wt = b.transpose('w', [2, 3, 0, 1]);
    const wf = reverseSpatial(b, wt, g);
    const dxt = b.node('Conv', [dyt, wf], convAttrs(f));
    b.transpose(dxt, NCHW_TO_NHWC, 'dx');
  } else {
    const extraH = g.inH + g.padTop + g.padBottom - ((g.outH - 1) * g.strideH + (g.kH - 1) * g.dilH + 1);
    const extraW = g.inW + g.padLeft + g.padRight - ((g.outW - 1) * g.strideW + (g.kW - 1) * g.dilW + 1);
    const dyt = b.transpose('dy', NHWC_TO_NCHW);
    const wt = b.transpose('w', HWIO_TO_OIHW);
    const dxt = b.node('ConvTranspose', [dyt, wt], {
      ...convAttrs(g),
      output_padding: { ints: [extraH, extraW] },
    });
    b.transpose(dxt, NCHW_TO_NHWC, 'dx');
  }
  return b.build(
    [
      { name: 'dy', shape: yShape(g) },
      { name: 'w', shape: wShape(g) },
    ],
    [{ name: 'dx', shape: xShape(g) }],
  );
}

/**
 * The input gradient of a strided convolution (dilation 1) as strideH x strideW stride-1 convolutions,
 * one per sub-pixel phase, interleaved. In padded input coordinates row `s*q + r` receives only the taps
 * `kh = r + s*t`, from dy row `q - t`: a stride-1 correlation of dy (padded by the sub-filter's size - 1
 * on top) with the sub-filter `w[r + s*t]` reversed and its channels swapped. Why: ConvTranspose builds
 * the whole column matrix and folds it back with a single-threaded col2im; the phases are MLAS NCHWc
 * convolutions with exactly the multiplications the gradient needs (on MLAS's NCHW convolution instead,
 * the phases and their transposes were 0.8-1.1x ConvTranspose, so 'flipped' keeps it). A phase no tap
 * reaches (a 1x1 filter's odd rows) is 0.
 */
function phasedInputGradient(b: GraphBuilder, g: ConvGeometry, block: number): void {
  const sH = g.strideH;
  const sW = g.strideW;
  const qH = Math.ceil((g.inH + g.padTop + g.padBottom) / sH);
  const qW = Math.ceil((g.inW + g.padLeft + g.padRight) / sW);
  const phaseConv = nchwcPhases(b, g, block);
  const taps = (k: number, s: number, r: number) => (r < k ? Math.ceil((k - r) / s) : 0);
  const rows: string[] = [];
  for (let rh = 0; rh < sH; rh++) {
    const cols: string[] = [];
    for (let rw = 0; rw < sW; rw++) {
      const tH = taps(g.kH, sH, rh);
      const tW = taps(g.kW, sW, rw);
      // qH >= outH always ((outH - 1) * s + k <= the padded height), so the bottom pad is never negative.
      const phase =
        tH === 0 || tW === 0
          ? b.node('Expand', [b.constFloat(0), b.constInts([g.batch, qH, qW, g.inC])])
          : phaseConv(rh, rw, {
              ...g,
              kH: tH,
              kW: tW,
              strideH: 1,
              strideW: 1,
              padTop: tH - 1,
              padLeft: tW - 1,
              padBottom: qH - g.outH,
              padRight: qW - g.outW,
            });
      cols.push(b.reshape(phase, [g.batch, qH, 1, qW, 1, g.inC]));
    }
    rows.push(cols.length === 1 ? cols[0]! : b.node('Concat', cols, { axis: { int: 4 } }));
  }
  // [N, qH, sH, qW, sW, Cin] is NHWC with rows s*q + r; then the padding is cropped off.
  const stacked = rows.length === 1 ? rows[0]! : b.node('Concat', rows, { axis: { int: 2 } });
  const nhwc = b.reshape(stacked, [g.batch, qH * sH, qW * sW, g.inC]);
  b.node(
    'Slice',
    [
      nhwc,
      b.constInts([g.padTop, g.padLeft]),
      b.constInts([g.padTop + g.inH, g.padLeft + g.inW]),
      b.constInts([1, 2]),
    ],
    undefined,
    'dx',
  );
}

/** A sub-filter's taps `r + s*t`, t = t_max .. 0 (reversed), on spatial axes 2 and 3 of `w`. */
function phaseTaps(b: GraphBuilder, w: string, g: ConvGeometry, rh: number, rw: number, p: ConvGeometry) {
  return b.node('Slice', [
    w,
    b.constInts([rh + g.strideH * (p.kH - 1), rw + g.strideW * (p.kW - 1)]),
    b.constInts([-(g.kH + 1), -(g.kW + 1)]),
    b.constInts([2, 3]),
    b.constInts([-g.strideH, -g.strideW]),
  ]);
}

/** Phases on MLAS's NCHWc convolution: dy reordered once, each phase's output reordered to NHWC. */
function nchwcPhases(b: GraphBuilder, g: ConvGeometry, block: number) {
  const dyc = b.reorderInput('dy');
  const inP = roundUp(g.inC, block);
  const wp = b.padLastAxis('w', 4, inP - g.inC, 2);
  const w6 = b.reshape(wp, [g.kH, g.kW, inP / block, block, g.outC / block, block]);
  // OIHWBiBo blocks [Cin/B, Cout/B, KH, KW, Bi (Cout), Bo (Cin)], as the stride-1 'nchwc' input gradient.
  const wt = b.transpose(w6, [2, 4, 0, 1, 5, 3]);
  return (rh: number, rw: number, p: ConvGeometry) => {
    const sub = b.reshape(phaseTaps(b, wt, g, rh, rw, p), [inP, g.outC, p.kH, p.kW]);
    return b.reorderOutput(b.nchwcConv(dyc, sub, undefined, p, false), g.inC);
  };
}

/**
 * For a stride-1 convolution, the geometry of dx = correlate(pad(dy), flip(w)):
 * input dy `[N, OH, OW, Cout]`, output `[N, H, W, Cin]`, pads chosen so that
 * output row iy reads dy rows iy + pt - kh*d. Undefined (null) for strided
 * convolutions or pads larger than the kernel (negative re-pads).
 */
function flippedGeometry(g: ConvGeometry): ConvGeometry | null {
  if (g.strideH !== 1 || g.strideW !== 1) return null;
  const top = (g.kH - 1) * g.dilH - g.padTop;
  const left = (g.kW - 1) * g.dilW - g.padLeft;
  const bottom = g.inH + (g.kH - 1) * g.dilH - g.outH - top;
  const right = g.inW + (g.kW - 1) * g.dilW - g.outW - left;
  if (Math.min(top, left, bottom, right) < 0) return null;
  return {
    ...g,
    inH: g.outH,
    inW: g.outW,
    inC: g.outC,
    outH: g.inH,
    outW: g.inW,
    outC: g.inC,
    padTop: top,
    padBottom: bottom,
    padLeft: left,
    padRight: right,
  };
}

/**
 * Conv2DBackpropFilter: inputs `x` NHWC, `dy` NHWC; output `dw` HWIO.
 * - 'nhwc': `dw = im2col(x)^T @ dy` as one Gemm, `[KH*KW*Cin, NOHOW] x [NOHOW, Cout]`.
 * - 'transpose': the same sum as a convolution with the batch axis as channels:
 *   `x` as `[Cin, N, H, W]` correlated with `dy` as `[Cout, N, OH, OW]` (stride and
 *   dilation swap roles) gives `[Cin, Cout, KH', KW']`, cropped to the kernel.
 */
export function backpropFilterGraph(g: ConvGeometry, layout: ConvLayout): OnnxGraph {
  const b = new GraphBuilder();
  const rows = g.batch * g.outH * g.outW;
  if ((layout === 'taps' || layout === 'nchwc') && !isPointwise(g)) {
    // One GEMM per filter tap, dw[kh, kw] = x(kh, kw)^T @ dy over all N*OH*OW positions, where
    // x(kh, kw) is the strided slice of the padded input that tap reads. Same sums as the im2col
    // GEMM below, without its [N*OH*OW, KH*KW*Cin] matrix (151 MB for 3x3x256 at 128x128, which
    // made that form memory-bound): each slice is one input-sized copy the GEMM reads once.
    // MLAS's GEMM runs best with the wider side as the output's columns: a narrow Cout (a head's
    // 9 or 36 outputs) is computed as dw^T per tap, [Cout, Cin], and transposed once at the end.
    // Large maps go in bands of output rows (TAPS_BAND_POSITIONS positions each) whose nine taps
    // stay in cache, summed at the end: at 128x128 the GEMMs over all 16,384 rows streamed
    // 64 MB per tap from memory.
    const swap = g.outC < g.inC;
    const bandRows = Math.max(1, Math.floor(TAPS_BAND_POSITIONS / (g.batch * g.outW)));
    const xp =
      g.padTop + g.padBottom + g.padLeft + g.padRight > 0
        ? b.node('Pad', ['x', b.constInts([0, g.padTop, g.padLeft, 0, 0, g.padBottom, g.padRight, 0])])
        : 'x';
    const bands: string[] = [];
    for (let r0 = 0; r0 < g.outH; r0 += bandRows) {
      const rows = Math.min(bandRows, g.outH - r0);
      const whole = rows === g.outH;
      const h0 = r0 * g.strideH;
      const h1 = (r0 + rows - 1) * g.strideH + (g.kH - 1) * g.dilH + 1;
      const dyBand = whole
        ? 'dy'
        : b.node('Slice', ['dy', b.constInts([r0]), b.constInts([r0 + rows]), b.constInts([1])]);
      const xBand = whole
        ? xp
        : b.node('Slice', [xp, b.constInts([h0]), b.constInts([h1]), b.constInts([1])]);
      // The band's own geometry: already padded, `rows` output rows.
      const band: ConvGeometry = {
        ...g,
        inH: h1 - h0,
        inW: g.inW + g.padLeft + g.padRight,
        outH: rows,
        padTop: 0,
        padBottom: 0,
        padLeft: 0,
        padRight: 0,
      };
      const positions = g.batch * rows * g.outW;
      const dy2 = b.reshape(dyBand, [positions, g.outC]);
      const parts: string[] = [];
      for (const slice of b.tapSlices(xBand, band)) {
        const s2 = b.reshape(slice, [positions, g.inC]);
        parts.push(b.node('Gemm', swap ? [dy2, s2] : [s2, dy2], { transA: { int: 1 } }));
      }
      bands.push(parts.length === 1 ? parts[0]! : b.node('Concat', parts, { axis: { int: 0 } }));
    }
    const dw2 = bands.length === 1 ? bands[0]! : b.node('Sum', bands);
    if (swap) b.transpose(b.reshape(dw2, [g.kH, g.kW, g.outC, g.inC]), [0, 1, 3, 2], 'dw');
    else b.reshape(dw2, wShape(g), 'dw');
  } else if (layout !== 'transpose') {
    const cols = isPointwise(g) ? 'x' : b.im2col('x', g);
    const cols2 = b.reshape(cols, [rows, g.kH * g.kW * g.inC]);
    const dy2 = b.reshape('dy', [rows, g.outC]);
    const dw2 = b.node('Gemm', [cols2, dy2], { transA: { int: 1 } });
    b.reshape(dw2, wShape(g), 'dw');
  } else {
    const xt = b.transpose('x', [3, 0, 1, 2]);
    const dyt = b.transpose('dy', [3, 0, 1, 2]);
    const full = b.node('Conv', [xt, dyt], {
      kernel_shape: { ints: [g.outH, g.outW] },
      strides: { ints: [g.dilH, g.dilW] },
      dilations: { ints: [g.strideH, g.strideW] },
      pads: { ints: [g.padTop, g.padLeft, g.padBottom, g.padRight] },
    });
    const cropped = b.node('Slice', [
      full,
      b.constInts([0, 0]),
      b.constInts([g.kH, g.kW]),
      b.constInts([2, 3]),
    ]);
    b.transpose(cropped, [2, 3, 0, 1], 'dw');
  }
  return b.build(
    [
      { name: 'x', shape: xShape(g) },
      { name: 'dy', shape: yShape(g) },
    ],
    [{ name: 'dw', shape: wShape(g) }],
  );
}
