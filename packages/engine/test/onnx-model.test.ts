/** The ONNX graphs: TensorFlow 'same' padding resolved to explicit asymmetric pads, and encoding round trips. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  backpropFilterGraph,
  backpropInputGraph,
  chooseLayout,
  convGeometry,
  decodeModel,
  encodeModel,
  forwardGraph,
  IM2COL_LIMIT,
  NCHWC_DOMAIN,
  NCHWC_MIN_POSITIONS,
  TAPS_BAND_POSITIONS,
} from '../src/index.js';

describe('convGeometry', () => {
  it("maps TF 'same' with an odd pad total to bottom/right-heavy explicit pads", () => {
    // in 8, k 3, stride 2: out = ceil(8/2) = 4; total = (4-1)*2 + 3 - 8 = 1 -> top 0, bottom 1.
    const g = convGeometry([1, 8, 8, 2], [3, 3, 2, 4], 2, 1, 'same');
    expect([g.outH, g.padTop, g.padBottom, g.padLeft, g.padRight]).toEqual([4, 0, 1, 0, 1]);
    // in 7, k 4, stride 1: total = 6 + 4 - 7 = 3 -> top 1, bottom 2.
    const h = convGeometry([1, 7, 7, 2], [4, 4, 2, 4], 1, 1, 'same');
    expect([h.outH, h.padTop, h.padBottom]).toEqual([7, 1, 2]);
  });

  it('keeps explicit pads as given', () => {
    const g = convGeometry([1, 9, 9, 1], [3, 3, 1, 1], 1, 1, [
      [0, 0],
      [2, 0],
      [1, 3],
      [0, 0],
    ]);
    expect([g.padTop, g.padBottom, g.padLeft, g.padRight, g.outH, g.outW]).toEqual([2, 0, 1, 3, 9, 11]);
  });
});

describe('chooseLayout', () => {
  it('uses a GEMM for pointwise convs, NHWC im2col only while it stays small, and the gradient forms of the measured winners', () => {
    const pw = convGeometry([2, 64, 64, 256], [1, 1, 256, 64], 1, 1, 'valid');
    expect(
      ['forward', 'backpropInput', 'backpropFilter'].map((k) => chooseLayout(k as 'forward', pw)),
    ).toEqual(['nhwc', 'nhwc', 'nhwc']);
    // 2*16*16 outputs x 9 taps x 256 ch = 1.18 M im2col floats: under the limit.
    const small = convGeometry([2, 16, 16, 256], [3, 3, 256, 256], 1, 1, 'same');
    expect(2 * 16 * 16 * 9 * 256).toBeLessThan(IM2COL_LIMIT);
    expect(chooseLayout('forward', small)).toBe('nhwc');
    expect(chooseLayout('backpropInput', small)).toBe('nhwc');
    // 1*64*64 x 9 x 256 = 9.4 M: over it.
    const big = convGeometry([1, 64, 64, 256], [3, 3, 256, 256], 1, 1, 'same');
    expect(chooseLayout('forward', big)).toBe('transpose');
    // Over it, a stride-1 input gradient runs on MLAS's convolution with the filter flipped.
    expect(chooseLayout('backpropInput', big)).toBe('flipped');
    // The filter gradient is one GEMM per tap at any size (no im2col matrix to outgrow).
    expect(chooseLayout('backpropFilter', big)).toBe('taps');
    expect(chooseLayout('backpropFilter', small)).toBe('taps');
    // Without NCHWc kernels a strided input gradient keeps ConvTranspose.
    expect(
      chooseLayout('backpropInput', convGeometry([1, 64, 64, 256], [3, 3, 256, 256], 2, 1, 'same')),
    ).toBe('transpose');
    // Strided input gradients have no NHWC form; the RGB stem's filter gradient neither pays off.
    const stem = convGeometry([2, 64, 64, 3], [7, 7, 3, 64], 2, 1, 'same');
    expect(chooseLayout('backpropInput', stem)).toBe('transpose');
    expect(chooseLayout('backpropFilter', stem)).toBe('transpose');
  });

  it("takes MLAS's NCHWc convolution for large maps when a block size is given, where the channels allow", () => {
    const big = convGeometry([1, 64, 64, 256], [3, 3, 256, 256], 1, 1, 'same');
    expect(64 * 64).toBeGreaterThanOrEqual(NCHWC_MIN_POSITIONS);
    for (const block of [8, 16]) {
      expect(chooseLayout('forward', big, block)).toBe('nchwc');
      expect(chooseLayout('backpropInput', big, block)).toBe('nchwc');
      expect(chooseLayout('backpropFilter', big, block)).toBe('taps');
    }
    // No NCHWc kernels (block 1): the GEMM forms as before.
    expect(chooseLayout('forward', big, 1)).toBe('transpose');
    // Small maps keep the NHWC im2col; pointwise stays a GEMM.
    const small = convGeometry([2, 16, 16, 256], [3, 3, 256, 256], 1, 1, 'same');
    expect(chooseLayout('forward', small, 16)).toBe('nhwc');
    const pw = convGeometry([1, 128, 128, 256], [1, 1, 256, 256], 1, 1, 'valid');
    expect(chooseLayout('forward', pw, 16)).toBe('nhwc');
    // A head's 9 outputs: the forward pads them to a block; its input gradient reads 9 channels
    // (not a block multiple), so it keeps the GEMM forms.
    const head = convGeometry([1, 128, 128, 256], [3, 3, 256, 9], 1, 1, 'same');
    expect(chooseLayout('forward', head, 16)).toBe('nchwc');
    expect(chooseLayout('backpropInput', head, 16)).not.toBe('nchwc');
    // Strided: both take it (the input gradient as sub-pixel phases); the RGB stem's forward does not.
    const strided = convGeometry([1, 130, 130, 256], [3, 3, 256, 256], 2, 1, 'valid');
    expect(chooseLayout('forward', strided, 16)).toBe('nchwc');
    expect(chooseLayout('backpropInput', strided, 16)).toBe('nchwc');
    const stem = convGeometry([1, 512, 512, 3], [7, 7, 3, 64], 2, 1, 'same');
    expect(chooseLayout('forward', stem, 16)).toBe('transpose');
  });
});

describe('ONNX graphs', () => {
  it('writes the asymmetric pads into Conv as [top, left, bottom, right]', () => {
    const g = convGeometry([1, 8, 8, 2], [3, 3, 2, 4], 2, 1, 'same');
    const graph = forwardGraph(g, { layout: 'transpose', bias: true, activation: 'relu' });
    const conv = graph.nodes.find((n) => n.op === 'Conv')!;
    expect(conv.attrs?.pads).toEqual({ ints: [0, 0, 1, 1] });
    expect(conv.inputs).toHaveLength(3);
    expect(graph.nodes.map((n) => n.op)).toEqual(['Transpose', 'Transpose', 'Conv', 'Relu', 'Transpose']);
  });

  it("builds the NCHWc forward from onnxruntime's com.microsoft.nchwc ops with the filter in OIHWBiBo blocks", () => {
    const g = convGeometry([1, 8, 8, 32], [3, 3, 32, 20], 1, 1, 'same');
    const graph = forwardGraph(g, { layout: 'nchwc', bias: true, activation: 'relu', nchwcBlock: 16 });
    expect(graph.nodes.map((n) => `${n.domain ? 'nchwc.' : ''}${n.op}`)).toEqual([
      'Pad', // 20 output channels padded to 32 (filter)
      'Reshape',
      'Transpose',
      'Reshape',
      'Pad', // and bias
      'nchwc.ReorderInput',
      'nchwc.Conv',
      'nchwc.ReorderOutput',
    ]);
    const conv = graph.nodes.find((n) => n.op === 'Conv')!;
    expect(conv.attrs?.activation).toEqual({ string: 'Relu' });
    expect(graph.nodes.find((n) => n.op === 'Transpose')!.attrs?.perm).toEqual({ ints: [4, 2, 0, 1, 3, 5] });
    expect(graph.nodes.find((n) => n.op === 'ReorderOutput')!.attrs?.channels).toEqual({ int: 20 });
    const m = decodeModel(encodeModel(graph)) as { opsetImport: { domain?: string; version: number }[] };
    expect(m.opsetImport.map((o) => [o.domain ?? '', o.version])).toEqual([
      ['', 17],
      [NCHWC_DOMAIN, 1],
    ]);
    // Without a block size (no NCHWc kernels), 'nchwc' is the 'transpose' form.
    const plain = forwardGraph(g, { layout: 'nchwc', bias: false, activation: 'linear' });
    expect(plain.nodes.map((n) => n.op)).toEqual(['Transpose', 'Transpose', 'Conv', 'Transpose']);
  });

  it("splits the 'taps' filter gradient of a large map into bands of rows, summed", () => {
    // 40 x 40 outputs: bands of floor(1024 / 40) = 25 rows, then 15 -> 2 x 9 GEMMs and one Sum.
    expect(TAPS_BAND_POSITIONS).toBe(1024);
    const big = backpropFilterGraph(convGeometry([1, 40, 40, 16], [3, 3, 16, 16], 1, 1, 'same'), 'taps');
    expect(big.nodes.filter((n) => n.op === 'Gemm')).toHaveLength(18);
    expect(big.nodes.filter((n) => n.op === 'Sum')).toHaveLength(1);
    const small = backpropFilterGraph(convGeometry([1, 16, 16, 16], [3, 3, 16, 16], 1, 1, 'same'), 'taps');
    expect(small.nodes.filter((n) => n.op === 'Gemm')).toHaveLength(9);
    expect(small.nodes.some((n) => n.op === 'Sum')).toBe(false);
  });

  it('sets ConvTranspose output_padding to the rows a strided conv dropped', () => {
    // in 9, k 3, stride 2, valid: out 4 covers (4-1)*2 + 3 = 9 rows -> 0 extra; in 10 -> 1 extra.
    const a = backpropInputGraph(convGeometry([1, 9, 9, 1], [3, 3, 1, 1], 2, 1, 'valid'), 'transpose');
    const b = backpropInputGraph(convGeometry([1, 10, 10, 1], [3, 3, 1, 1], 2, 1, 'valid'), 'transpose');
    const op = (g: typeof a) => g.nodes.find((n) => n.op === 'ConvTranspose')!.attrs?.output_padding;
    expect(op(a)).toEqual({ ints: [0, 0] });
    expect(op(b)).toEqual({ ints: [1, 1] });
  });

  it('encodes a ModelProto that decodes to the same graph', () => {
    const g = convGeometry([2, 6, 6, 3], [3, 3, 3, 5], 1, 1, 'same');
    const bytes = encodeModel(forwardGraph(g, { layout: 'nhwc', bias: false, activation: 'linear' }), 'm');
    const m = decodeModel(bytes) as {
      irVersion: number;
      opsetImport: { version: number }[];
      graph: { node: { opType: string }[]; input: { name: string }[]; initializer: { dataType: number }[] };
    };
    expect(m.irVersion).toBe(8);
    expect(m.opsetImport[0]!.version).toBe(17);
    expect(m.graph.input.map((i) => i.name)).toEqual(['x', 'w']);
    // 9 kernel taps -> 9 strided Slices feeding one Concat, then the GEMM.
    const ops = m.graph.node.map((n) => n.opType);
    expect(ops.filter((o) => o === 'Slice')).toHaveLength(9);
    expect(ops).toContain('Concat');
    expect(ops).toContain('MatMul');
    // TensorProto.DataType.INT64 = 7 in onnx.proto.
    expect(m.graph.initializer.every((i) => i.dataType === 7)).toBe(true);
  });
});

// The onnx project's own checker (Debian's python3-onnx) as an independent validator of our encoding.
const PY = '/usr/bin/python3';
const hasOnnx = spawnSync(PY, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0;

// Skipped where Debian's python3-onnx is not installed (the checker is the reference).
describe.skipIf(!hasOnnx)('onnx.checker accepts every graph form', () => {
  it('forward, backprop-input and backprop-filter graphs, every layout, with full shape inference', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bmc-engine-'));
    try {
      const g = convGeometry([2, 8, 7, 3], [3, 3, 3, 4], 2, 1, 'same');
      const p = convGeometry([2, 5, 5, 3], [1, 1, 3, 4], 1, 1, 'valid');
      const q = convGeometry([2, 6, 6, 3], [3, 3, 3, 4], 1, 1, 'same');
      // Strided pointwise (a phase no tap reaches) and stride 3 with a 2x4 filter and explicit pads.
      const s = convGeometry([2, 7, 8, 3], [1, 1, 3, 4], 2, 1, 'same');
      const t = convGeometry([1, 10, 11, 2], [2, 4, 2, 3], [3, 2], 1, [
        [0, 0],
        [1, 0],
        [2, 1],
        [0, 0],
      ]);
      const files: string[] = [];
      // The 'nchwc' graphs' contrib ops have no onnx schema (the checker skips a non-onnx domain):
      // what it checks there is the encoding and the standard nodes that reorder the filter.
      for (const layout of ['nhwc', 'transpose', 'flipped', 'taps', 'nchwc'] as const) {
        const graphs = [
          forwardGraph(g, { layout, bias: true, activation: 'relu6' }),
          forwardGraph(p, { layout, bias: false, activation: 'linear' }),
          backpropInputGraph(g, layout),
          backpropInputGraph(p, layout),
          backpropInputGraph(q, layout),
          backpropInputGraph(s, layout),
          backpropInputGraph(t, layout),
          backpropFilterGraph(g, layout),
          backpropFilterGraph(p, layout),
          backpropFilterGraph(q, layout),
        ];
        if (layout === 'nchwc') {
          const c = convGeometry([1, 6, 6, 16], [3, 3, 16, 20], 1, 1, 'same');
          const d = convGeometry([1, 6, 6, 20], [3, 3, 20, 16], 1, 1, 'same');
          const e = convGeometry([1, 9, 8, 20], [3, 3, 20, 16], 2, 1, 'same');
          graphs.push(
            forwardGraph(c, { layout, bias: true, activation: 'elu', nchwcBlock: 16 }),
            backpropInputGraph(d, layout, 16),
            backpropInputGraph(e, layout, 16),
          );
        }
        graphs.forEach((gr, i) => {
          const f = join(dir, `${layout}_${i}.onnx`);
          writeFileSync(f, encodeModel(gr));
          files.push(f);
        });
      }
      const script =
        'import onnx,sys\nfor f in sys.argv[1:]: onnx.checker.check_model(onnx.load(f), full_check=True)\nprint("ok", len(sys.argv)-1)';
      const r = spawnSync(PY, ['-c', script, ...files], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(`ok ${files.length}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
