import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDetector, detectorConfig } from '@bmc/heads-iou';
import * as ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { beforeAll, describe, expect, it } from 'vitest';
import { detectorMetadata, exportDetectorOnnx, quantizeOnnx, readBmcMetadata } from '../src/index.js';
import { OnnxGraphBuilder, valueInfo } from '../src/onnx/graph-builder.js';
import { ModelProto } from '../src/onnx/proto.js';
import { decodeModel, encodeModel } from '../src/quantize/graph.js';
import {
  activationParams,
  applyQdq,
  foldPadsIntoConvs,
  planQdq,
  quantizeBias,
  quantizeWeightsPerChannel,
  RangeCollector,
  roundHalfEven,
} from '../src/quantize/index.js';
import { initTf, randomizeWeights, randomValues } from './helpers.js';

describe('quantisation parameters (hand-computed)', () => {
  it('rounds half to even like QuantizeLinear', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6].map(roundHalfEven)).toEqual([
      0, 2, 2, -0, -2, -2, 2, -3,
    ]);
  });

  it('uint8 activations: a ReLU range gets zero point 0, a symmetric one 128, 0 is always exact', () => {
    const relu = activationParams({ min: 0, max: 2.55 });
    expect(relu.scale).toBeCloseTo(0.01, 12);
    expect(relu.zeroPoint).toBe(0);
    const sym = activationParams({ min: -1, max: 1 });
    expect(sym.scale).toBeCloseTo(2 / 255, 12);
    expect(sym.zeroPoint).toBe(128); // 1 / (2 / 255) = 127.5 -> 128 (half to even)
    // A range that excludes 0 is widened to include it.
    expect(activationParams({ min: 1, max: 3.55 }).zeroPoint).toBe(0);
    expect(activationParams({ min: -5.1, max: -1 })).toEqual({ scale: 5.1 / 255, zeroPoint: 255 });
    expect(activationParams({ min: 0, max: 0 })).toEqual({ scale: 1, zeroPoint: 0 });
  });

  it('int8 weights: symmetric per output channel, max |w| -> 127', () => {
    // Two output channels of three weights each.
    const w = new Float32Array([1, -0.5, 0.25, 0, 0, 0]);
    const q = quantizeWeightsPerChannel(w, 2);
    expect(q.scales[0]).toBeCloseTo(1 / 127, 9);
    expect(q.scales[1]).toBe(1); // all-zero channel: any scale, no division by zero
    expect([...q.data]).toEqual([127, -64, 32, 0, 0, 0]); // -63.5 -> -64, 31.75 -> 32
    // Bias at the accumulator's scale: 0.3 / (0.1 * 0.02) = 150.
    const b = quantizeBias(new Float32Array([0.3, -0.01]), 0.1, new Float32Array([0.02, 0.001]));
    expect([...b.data]).toEqual([150, -100]);
  });

  it('minmax keeps the extremes over all images; percentile drops a lone outlier', () => {
    const base = Float32Array.from({ length: 10000 }, (_, i) => (i % 100) / 100); // 0 .. 0.99
    const spiked = Float32Array.from(base);
    spiked[7] = 50;
    const mm = new RangeCollector('minmax');
    const pc = new RangeCollector('percentile', 99.9);
    for (const c of [mm, pc]) {
      c.add('t', base);
      c.endImage();
      c.add('t', spiked);
      c.endImage();
    }
    expect(mm.range('t')).toEqual({ min: 0, max: 50 });
    const r = pc.range('t');
    expect(r.max).toBeCloseTo(0.99, 5);
    expect(r.min).toBeCloseTo(0, 5);
    expect(() => mm.add('nan', new Float32Array([Number.NaN]))).toThrow(/non-finite/);
  });
});

/** Conv weights `[cout, cin, k, k]` with variance 1/fan_in. */
function convWeights(cout: number, cin: number, k: number, seed: number): Float32Array {
  const r = Math.sqrt(3 / (cin * k * k));
  return randomValues(cout * cin * k * k, seed, -r, r);
}

/**
 * A small float graph with each pattern the quantiser handles: zero Pad -> Conv -> ReLU,
 * a residual Add, MaxPool, nearest Resize, a conv feeding only float ops, then a float tail
 * (Sigmoid) as decoding would be.
 */
function smallGraph(): Uint8Array {
  const g = new OnnxGraphBuilder();
  const x = g.reserve('x');
  const y = g.reserve('y');
  const padded = g.node('Pad', [x, g.int64([0, 0, 1, 1, 0, 0, 1, 1])], 'pad', {
    mode: { string: 'constant' },
  })[0]!;
  const conv = (inp: string, cin: number, cout: number, k: number, seed: number, attrs = {}) =>
    g.node(
      'Conv',
      [
        inp,
        g.floatTensor(`w${seed}`, [cout, cin, k, k], convWeights(cout, cin, k, seed)),
        g.floatTensor(`b${seed}`, [cout], randomValues(cout, seed + 1, -0.1, 0.1)),
      ],
      `conv${seed}`,
      attrs,
    )[0]!;
  const c1 = g.node('Relu', [conv(padded, 3, 8, 3, 1)], 'relu1')[0]!;
  const c2 = conv(c1, 8, 8, 3, 2, { pads: { ints: [1, 1, 1, 1] } });
  const sum = g.node('Relu', [g.node('Add', [c1, c2], 'add')[0]!], 'relu2')[0]!;
  const pooled = g.node('MaxPool', [sum], 'pool', {
    kernel_shape: { ints: [2, 2] },
    strides: { ints: [2, 2] },
  })[0]!;
  const up = g.node('Resize', [pooled, '', g.float([1, 1, 2, 2])], 'up', { mode: { string: 'nearest' } })[0]!;
  const head = conv(up, 8, 4, 1, 3);
  g.node('Sigmoid', [head], 'tail', {}, [y]);
  const proto = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'small',
      node: g.nodes,
      initializer: g.initializers,
      input: [valueInfo({ name: x, shape: ['N', 3, 'H', 'W'] })],
      output: [valueInfo({ name: y, shape: ['N', 4, 'H', 'W'] })],
    },
  };
  return ModelProto.encode(ModelProto.fromObject(proto)).finish();
}

async function runOrt(bytes: Uint8Array, x: Float32Array, dims: number[], opts = {}): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, opts);
  const out = await s.run({ x: new ort.Tensor('float32', x, dims) });
  await s.release();
  return out.y!.data as Float32Array;
}

/** Op counts of the graph onnxruntime actually runs (after its QDQ fusions). */
async function optimizedOps(bytes: Uint8Array): Promise<Record<string, number>> {
  const file = join(tmpdir(), `bmc-qdq-opt-${process.pid}-${Math.random().toString(36).slice(2)}.onnx`);
  const s = await ort.InferenceSession.create(bytes, {
    graphOptimizationLevel: 'extended',
    optimizedModelFilePath: file,
  });
  await s.release();
  const m = ModelProto.decode(readFileSync(file)) as unknown as {
    graph: { node: Array<{ opType: string }> };
  };
  const c: Record<string, number> = {};
  for (const n of m.graph.node) c[n.opType] = (c[n.opType] ?? 0) + 1;
  return c;
}

describe('QDQ rewrite of a small graph', () => {
  const DIMS = [1, 3, 16, 16];
  const calib = Array.from({ length: 4 }, (_, i) => randomValues(3 * 16 * 16, 10 + i, -2, 2));

  it('folding zero Pads into the conv changes nothing', async () => {
    const bytes = smallGraph();
    const m = decodeModel(bytes);
    expect(foldPadsIntoConvs(m.graph)).toBe(1);
    expect(m.graph.node.some((n) => n.opType === 'Pad')).toBe(false);
    const a = await runOrt(bytes, calib[0]!, DIMS);
    const b = await runOrt(encodeModel(m), calib[0]!, DIMS);
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThan(1e-6);
  });

  it('onnxruntime fuses every conv and the add into integer kernels, and the result tracks the float graph', async () => {
    const bytes = smallGraph();
    const m = decodeModel(bytes);
    foldPadsIntoConvs(m.graph);
    // By default a conv on fewer than 4 input channels (this graph's first, on the 3-channel
    // input, like a detector's stem) stays float.
    // conv2 and conv3 only: the add is left float too, its other input comes from the float conv.
    expect(planQdq(structuredClone(m.graph)).quantized.size).toBe(2);
    const plan = planQdq(m.graph, { minInputChannels: 1 });
    // ReLUs fold into the Q after conv1 and after the add.
    expect(plan.fusedRelus.size).toBe(2);
    expect(plan.passThrough.size).toBe(2); // MaxPool, Resize
    const c = new RangeCollector('minmax');
    const withOutputs = encodeModel({
      ...m,
      graph: {
        ...m.graph,
        output: [
          ...m.graph.output,
          ...plan.calibrated.map((name) => ({ name, type: { tensorType: { elemType: 1 } } })),
        ],
      },
    });
    const s = await ort.InferenceSession.create(withOutputs);
    for (const x of calib) {
      const out = await s.run({ x: new ort.Tensor('float32', x, DIMS) });
      for (const t of plan.calibrated) c.add(t, out[t]!.data as Float32Array);
      c.endImage();
    }
    await s.release();
    const summary = applyQdq(m.graph, plan, new Map(plan.calibrated.map((t) => [t, c.range(t)])));
    expect(summary.quantizedConvs).toBe(3);
    expect(summary.quantizedAdds).toBe(1);
    const q = encodeModel(m);
    // onnxruntime's own QDQ transformers are the independent judge of the format.
    const ops = await optimizedOps(q);
    expect(ops.QLinearConv).toBe(3);
    expect(ops.QLinearAdd).toBe(1);
    expect(ops.Conv ?? 0).toBe(0);

    // On an input of the calibrated kind, the sigmoid output stays within a few quantisation
    // steps of the float graph's (each step of the head's output scale moves a sigmoid by at
    // most step / 4).
    const x = randomValues(3 * 16 * 16, 99, -2, 2);
    const f = await runOrt(bytes, x, DIMS);
    const qi = await runOrt(q, x, DIMS);
    const headName = plan.calibrated[plan.calibrated.length - 1]!;
    const step = activationParams(c.range(headName)).scale;
    const maxDiff = Math.max(...f.map((v, i) => Math.abs(v - qi[i]!)));
    expect(maxDiff).toBeGreaterThan(0);
    expect(maxDiff).toBeLessThan(8 * step);
  });
});

describe('quantizeOnnx on a detector', () => {
  beforeAll(initTf);
  let floatBytes: Uint8Array;
  let q: Awaited<ReturnType<typeof quantizeOnnx>>;
  const SIZE = 64;
  const inputs = Array.from({ length: 3 }, (_, i) => ({
    data: randomValues(3 * SIZE * SIZE, 500 + i, -2, 2),
    dims: [1, 3, SIZE, SIZE],
  }));

  beforeAll(async () => {
    const det = buildDetector(
      detectorConfig('tiny', { backbone: { widthMultiplier: 0.125 }, neck: { channels: 16 } }),
    );
    randomizeWeights(det.model, 7);
    floatBytes = exportDetectorOnnx(det.model, detectorMetadata(det.config, { classNames: ['cell'] })).bytes;
    det.model.dispose();
    q = await quantizeOnnx(floatBytes, inputs, { calibration: { images: 3, source: 'random' } });
  }, 120_000);

  it('records the scheme and the calibration in the metadata', () => {
    const meta = readBmcMetadata(q.bytes);
    expect(meta.quantization).toMatchObject({
      format: 'QDQ',
      calibration: { method: 'minmax', images: 3, inputs: 3, source: 'random' },
    });
    expect(readBmcMetadata(floatBytes).quantization).toBeUndefined();
  });

  it('every conv of the detector but the stem runs as QLinearConv in onnxruntime', async () => {
    const graph = decodeModel(floatBytes).graph;
    const weights = new Map(graph.initializer.map((t) => [t.name, t]));
    const convs = graph.node.filter((n) => n.opType === 'Conv');
    // The stem conv reads the 3-channel image: it stays float (minInputChannels 4).
    const stem = convs.filter((n) => weights.get(n.input[1]!)!.dims![1]! < 4).length;
    expect(stem).toBe(1);
    const ops = await optimizedOps(q.bytes);
    expect(ops.QLinearConv).toBe(convs.length - stem);
    expect(q.summary.quantizedConvs).toBe(convs.length - stem);
    // int8 weights: a quarter of the float bytes, plus per-channel scales and int32 biases
    // (a larger share at these tiny widths).
    expect(q.bytes.length).toBeLessThan(0.45 * floatBytes.length);
  });

  it("onnxruntime-web (wasm) gives onnxruntime-node's int8 outputs", async () => {
    ortWeb.env.wasm.numThreads = 1;
    const node = await ort.InferenceSession.create(q.bytes);
    const web = await ortWeb.InferenceSession.create(q.bytes, { executionProviders: ['wasm'] });
    const x = inputs[0]!;
    const a = await node.run({ images: new ort.Tensor('float32', x.data, x.dims) });
    const b = await web.run({ images: new ortWeb.Tensor('float32', x.data, x.dims) });
    for (const name of node.outputNames) {
      const u = a[name]!.data as Float32Array;
      const v = b[name]!.data as Float32Array;
      expect(v.length).toBe(u.length);
      let range = 0;
      let diff = 0;
      for (let i = 0; i < u.length; i++) {
        range = Math.max(range, Math.abs(u[i]!));
        diff = Math.max(diff, Math.abs(u[i]! - v[i]!));
      }
      // Integer arithmetic is exact in both; they may differ by the rounding of a requantisation
      // (one uint8 step, 1/255 of the range) where the float reference sits on a half step.
      expect(diff, `${name}: max |node - web| ${diff} of range ${range}`).toBeLessThanOrEqual(
        (2 * range) / 255 + 1e-6,
      );
    }
    await node.release();
    await web.release();
  });

  it('refuses an already quantised file and empty calibration', async () => {
    await expect(quantizeOnnx(q.bytes, inputs, { calibration: { images: 1, source: 'x' } })).rejects.toThrow(
      /already quantised/,
    );
    await expect(quantizeOnnx(floatBytes, [], { calibration: { images: 0, source: 'x' } })).rejects.toThrow(
      /no calibration inputs/,
    );
  });
});
