/**
 * Every onnxruntime kernel against the tfjs cpu backend's own kernels (an
 * independent implementation) on random shapes: strides 1/2 (also anisotropic),
 * paddings valid / same (asymmetric when the total is odd) / explicit, dilations,
 * for every graph form, registered on wasm and on cpu.
 */
import type { NamedAttrMap } from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  convGeometry,
  type EngineHandle,
  loadOrtNative,
  nchwcApplies,
  nchwcBlockSize,
  registerOrtKernels,
  type TfPad,
} from '../src/index.js';
import { maxAbs, maxAbsDiff, onBackend, randomArray, rng, tf, useWasm } from './helpers.js';

interface Case {
  label: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  strides: [number, number];
  dilations: [number, number];
  pad: TfPad;
  activation: string;
}

const ACTIVATIONS = ['relu', 'linear', 'sigmoid', 'relu6', 'leakyrelu', 'elu'];

function outShape(c: Omit<Case, 'label' | 'activation'>): number[] | null {
  try {
    const info = tf.backend_util.computeConv2DInfo(c.x, c.w, c.strides, c.dilations, c.pad as 'same');
    return info.outHeight > 0 && info.outWidth > 0 ? info.outShape : null;
  } catch {
    return null;
  }
}

function makeCases(count: number, seed: number): Case[] {
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.min(a.length - 1, Math.floor(((r() + 1) / 2) * a.length))]!;
  const fixed: Omit<Case, 'label' | 'activation'>[] = [
    // 'same', stride 2, even input: pad total 1 -> top 0, bottom 1 (asymmetric).
    { x: [2, 8, 8, 3], w: [3, 3, 3, 4], strides: [2, 2], dilations: [1, 1], pad: 'same' },
    // pointwise (MatMul path) and strided 1x1 (downsample).
    { x: [2, 5, 6, 4], w: [1, 1, 4, 5], strides: [1, 1], dilations: [1, 1], pad: 'valid' },
    { x: [1, 7, 8, 4], w: [1, 1, 4, 3], strides: [2, 2], dilations: [1, 1], pad: 'same' },
    // 7x7/2 stem-like with symmetric explicit pads, and a dilated conv.
    {
      x: [1, 12, 11, 3],
      w: [7, 7, 3, 4],
      strides: [2, 2],
      dilations: [1, 1],
      pad: [
        [0, 0],
        [3, 3],
        [3, 3],
        [0, 0],
      ],
    },
    { x: [2, 9, 10, 3], w: [3, 3, 3, 2], strides: [1, 1], dilations: [2, 2], pad: 'same' },
  ];
  const cases: Omit<Case, 'label' | 'activation'>[] = [...fixed];
  while (cases.length < count) {
    const strides = pick<[number, number]>([
      [1, 1],
      [2, 2],
      [1, 2],
      [2, 1],
    ]);
    const c = {
      x: [pick([1, 2]), pick([5, 6, 7, 9, 12]), pick([5, 8, 11]), pick([1, 2, 3, 5])] as Case['x'],
      w: [pick([1, 2, 3, 5]), pick([1, 3, 4]), 0, pick([1, 3, 4, 6])] as Case['w'],
      strides,
      dilations:
        strides[0] === 1 && strides[1] === 1
          ? pick<[number, number]>([
              [1, 1],
              [2, 2],
              [1, 2],
            ])
          : [1, 1],
      pad: pick<TfPad>([
        'valid',
        'same',
        [
          [0, 0],
          [pick([0, 1, 2]), pick([0, 1, 2])],
          [pick([0, 1, 2]), pick([0, 1, 2])],
          [0, 0],
        ],
      ]),
    } as Omit<Case, 'label' | 'activation'>;
    c.w[2] = c.x[3];
    if (outShape(c)) cases.push(c);
  }
  return cases.map((c, i) => ({
    ...c,
    activation: ACTIVATIONS[i % ACTIVATIONS.length]!,
    label: `x${c.x.join('x')} w${c.w.join('x')} s${c.strides.join(',')} d${c.dilations.join(',')} pad ${JSON.stringify(c.pad)}`,
  }));
}

const CASES = makeCases(18, 8);

/** Runs one kernel through tfjs' engine with exact attributes, returns values. */
function kernel(
  backend: 'cpu' | 'wasm',
  name: string,
  inputs: Record<string, [Float32Array, number[]]>,
  attrs: object,
) {
  return onBackend(backend, () => {
    const ins: Record<string, tf.Tensor> = {};
    for (const [k, [data, shape]] of Object.entries(inputs)) ins[k] = tf.tensor(data, shape);
    return tf.engine().runKernel(name, ins, attrs as NamedAttrMap) as tf.Tensor;
  });
}

function expectClose(got: Float32Array, want: Float32Array, what: string) {
  const tol = 1e-4 * (1 + maxAbs(want));
  const d = maxAbsDiff(got, want);
  expect(d, `${what}: max |diff| ${d} > ${tol}`).toBeLessThanOrEqual(tol);
}

/** Checks all four kernels on `backend` (ours registered there) against cpu reference values. */
function checkCase(
  c: Case,
  backend: 'cpu' | 'wasm',
  reference: (name: string, ins: object, attrs: object) => Float32Array,
) {
  const r = rng(c.x.reduce((a, b) => a * 31 + b, 7));
  const y = outShape(c)!;
  const x = randomArray(c.x, r);
  const w = randomArray(c.w, r);
  const bias = randomArray([c.w[3]], r);
  const dy = randomArray(y, r);
  const base = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
  const fwdAttrs = { ...base, dilations: c.dilations };
  const jobs: [string, Record<string, [Float32Array, number[]]>, object][] = [
    ['Conv2D', { x: [x, c.x], filter: [w, c.w] }, fwdAttrs],
    [
      'FusedConv2D',
      { x: [x, c.x], filter: [w, c.w], bias: [bias, [c.w[3]]] },
      { ...fwdAttrs, activation: c.activation, leakyreluAlpha: 0.15 },
    ],
  ];
  // tfjs has no convolution gradients with dilation > 1, so the backprop kernels never see one.
  if (c.dilations[0] === 1 && c.dilations[1] === 1) {
    jobs.push(['Conv2DBackpropInput', { dy: [dy, y], filter: [w, c.w] }, { ...base, inputShape: c.x }]);
    jobs.push(['Conv2DBackpropFilter', { x: [x, c.x], dy: [dy, y] }, { ...base, filterShape: c.w }]);
  }
  for (const [name, ins, attrs] of jobs) {
    const want = reference(name, ins, attrs);
    const got = kernel(backend, name, ins, attrs);
    expectClose(got, want, `${name} ${c.label}`);
  }
}

const cpuReference = (name: string, ins: object, attrs: object) =>
  kernel('cpu', name, ins as Record<string, [Float32Array, number[]]>, attrs);

describe.each(['nhwc', 'transpose', 'flipped', 'taps'] as const)(
  'onnxruntime kernels on wasm, layout %s',
  (layout) => {
    let handle: EngineHandle;
    beforeAll(async () => {
      await useWasm();
      handle = registerOrtKernels({ backend: 'wasm', layout, threads: 1 });
    });
    afterAll(() => handle.unregister());

    it.each(CASES)('$label', (c) => checkCase(c, 'wasm', cpuReference));

    it('ran every kernel natively (no silent delegation)', () => {
      const s = handle.stats()!;
      expect(s.delegated).toEqual({});
      const withGrad = CASES.filter((c) => c.dilations[0] === 1 && c.dilations[1] === 1).length;
      expect(s.native).toEqual({
        Conv2D: CASES.length,
        FusedConv2D: CASES.length,
        Conv2DBackpropInput: withGrad,
        Conv2DBackpropFilter: withGrad,
      });
    });
  },
);

// MLAS's NCHWc convolution reads channels in blocks (16 with AVX-512, 8 with AVX2): the random
// cases above have too few channels for it, so these have 16-32 (an output side that is not a
// multiple of the block is padded: 9, 20, 24), strides, dilation, explicit asymmetric pads; the
// last two are large enough for the banded 'taps' filter gradient.
const NCHWC_CASES: Case[] = (
  [
    [[2, 9, 10, 16], [3, 3, 16, 16], [1, 1], [1, 1], 'same', 'relu'],
    [[1, 12, 11, 32], [3, 3, 32, 9], [1, 1], [1, 1], 'valid', 'linear'],
    [[1, 11, 12, 16], [3, 3, 16, 20], [2, 2], [1, 1], 'same', 'leakyrelu'],
    [[2, 8, 9, 16], [3, 3, 16, 32], [1, 1], [2, 2], 'same', 'sigmoid'],
    [
      [1, 7, 9, 32],
      [5, 3, 32, 16],
      [1, 1],
      [1, 1],
      [
        [0, 0],
        [1, 2],
        [0, 1],
        [0, 0],
      ],
      'relu6',
    ],
    [[1, 6, 7, 16], [3, 3, 16, 24], [1, 1], [1, 1], 'same', 'elu'],
    [[1, 9, 9, 20], [3, 3, 20, 16], [1, 1], [1, 1], 'same', 'relu'],
    // Strided input gradients as sub-pixel phases: odd sizes, a padded Cin, anisotropic strides and
    // explicit pads, a strided 1x1 (phases no tap reaches are zero).
    [[1, 11, 12, 20], [3, 3, 20, 16], [2, 2], [1, 1], 'same', 'relu'],
    [
      [1, 9, 8, 16],
      [3, 2, 16, 16],
      [2, 1],
      [1, 1],
      [
        [0, 0],
        [1, 0],
        [0, 1],
        [0, 0],
      ],
      'linear',
    ],
    [[2, 10, 9, 16], [1, 1, 16, 32], [2, 2], [1, 1], 'same', 'linear'],
    [[1, 13, 13, 16], [5, 5, 16, 16], [3, 3], [1, 1], 'valid', 'linear'],
    // Maps of more than TAPS_BAND_POSITIONS (1,024) positions: the filter gradient in bands of rows
    // (25 + 15 rows here), stride 1 and stride 2 with a narrow output (dw^T per tap).
    [[1, 40, 40, 16], [3, 3, 16, 16], [1, 1], [1, 1], 'same', 'relu'],
    [[1, 80, 80, 16], [3, 3, 16, 8], [2, 2], [1, 1], 'same', 'linear'],
  ] as [Case['x'], Case['w'], [number, number], [number, number], TfPad, string][]
).map(([x, w, strides, dilations, pad, activation]) => ({
  x,
  w,
  strides,
  dilations,
  pad,
  activation,
  label: `x${x.join('x')} w${w.join('x')} s${strides.join(',')} d${dilations.join(',')} pad ${JSON.stringify(pad)}`,
}));

describe('onnxruntime kernels on wasm, layout nchwc', () => {
  let handle: EngineHandle;
  const block = nchwcBlockSize(loadOrtNative());
  beforeAll(async () => {
    await useWasm();
    handle = registerOrtKernels({ backend: 'wasm', layout: 'nchwc', threads: 1 });
  });
  afterAll(() => handle.unregister());

  it.each(NCHWC_CASES)('$label', (c) => checkCase(c, 'wasm', cpuReference));

  it('the cases exercise the NCHWc graphs where MLAS has them', () => {
    if (block <= 1) return; // no NCHWc kernels on this CPU: every call took the fallback forms
    const g = (c: Case) => convGeometry(c.x, c.w, c.strides, c.dilations, c.pad);
    expect(NCHWC_CASES.filter((c) => nchwcApplies('forward', g(c), block)).length).toBeGreaterThanOrEqual(6);
    expect(
      NCHWC_CASES.filter((c) => nchwcApplies('backpropInput', g(c), block)).length,
    ).toBeGreaterThanOrEqual(3);
    const strided = NCHWC_CASES.filter((c) => c.strides[0] * c.strides[1] > 1);
    expect(strided.filter((c) => nchwcApplies('backpropInput', g(c), block)).length).toBeGreaterThanOrEqual(
      block === 16 ? 4 : 3,
    );
    expect(handle.stats()!.delegated).toEqual({});
  });
});

describe('onnxruntime kernels registered on the cpu backend', () => {
  const cases = CASES.slice(0, 6);
  // References first, with the cpu backend's own kernels still in place.
  const refs = new Map<string, Float32Array>();
  const recording = (name: string, ins: object, attrs: object) => {
    const key = `${name}|${JSON.stringify(attrs)}|${Object.values(ins)
      .map((v) => (v as [Float32Array, number[]])[1].join('x'))
      .join('|')}`;
    return refs.get(key) ?? refs.set(key, cpuReference(name, ins, attrs)).get(key)!;
  };
  let handle: EngineHandle;
  beforeAll(async () => {
    await useWasm();
    for (const c of cases) checkCase(c, 'cpu', recording); // fills refs (cpu vs itself)
    handle = registerOrtKernels({ backend: 'cpu', threads: 1 });
  });
  afterAll(() => handle.unregister());

  it.each(cases)('$label', (c) => {
    checkCase(c, 'cpu', recording);
  });

  it('delegates what it does not handle (NCHW) to the cpu kernel', () => {
    const before = handle.stats()!.delegated.Conv2D ?? 0;
    const r = rng(3);
    const got = onBackend('cpu', () =>
      tf.conv2d(
        tf.tensor4d(randomArray([1, 2, 5, 5], r), [1, 2, 5, 5]),
        tf.ones([3, 3, 2, 2]),
        1,
        'same',
        'NCHW',
      ),
    );
    expect(got.length).toBe(50);
    expect(handle.stats()!.delegated.Conv2D).toBe(before + 1);
  });
});
