import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { unzipSync, zipSync } from 'fflate';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  importResNetWeights,
  looksLikePth,
  PickleError,
  parsePth,
  parseSafetensors,
  type ResNetDepth,
  resnet,
  WeightImportError,
} from '../src/index.js';
import { type ArrayFixture, FIXTURES, readBytes, readJson, relativeMaxDiff, useCpu } from './helpers.js';

interface ParityFixture {
  input: ArrayFixture;
  cases: Array<{ depth: ResNetDepth; widthMultiplier: number; weights: string; features: ArrayFixture[] }>;
}

const fx = readJson<ParityFixture>('resnet_parity.json');
const models: tf.LayersModel[] = [];

function build(depth: ResNetDepth, widthMultiplier: number, shape: [number, number]): tf.LayersModel {
  const input = tf.input({ shape: [shape[0], shape[1], 3] });
  const model = tf.model({ inputs: input, outputs: resnet(input, { depth, widthMultiplier }).features });
  models.push(model);
  return model;
}

/** Max abs and relative difference of C2..C5 against torchvision's, with the shapes checked. */
function compare(model: tf.LayersModel, input: ArrayFixture, expected: ArrayFixture[]) {
  const x = tf.tensor(input.data, input.shape);
  const outs = model.predict(x) as tf.Tensor[];
  let abs = 0;
  let rel = 0;
  outs.forEach((o, i) => {
    expect(o.shape).toEqual(expected[i]!.shape);
    const a = o.dataSync();
    const e = expected[i]!.data;
    for (let j = 0; j < e.length; j++) abs = Math.max(abs, Math.abs(a[j]! - e[j]!));
    rel = Math.max(rel, relativeMaxDiff(a, e));
  });
  tf.dispose([x, ...outs]);
  return { abs, rel };
}

beforeAll(useCpu);
afterEach(() => {
  while (models.length) models.pop()!.dispose();
});

describe('.pth state dicts written by torch.save (tooling/fixtures/pth_fixtures.py)', () => {
  const files = [
    { file: 'resnet18_w16.pth', format: 'zip', weights: 'resnet18_w16.safetensors' },
    { file: 'resnet18_w16_legacy.pth', format: 'legacy', weights: 'resnet18_w16.safetensors' },
    { file: 'resnet50_w32.pth', format: 'zip', weights: 'resnet50_w32.safetensors' },
  ] as const;

  for (const f of files) {
    it(`${f.file} (${f.format}): every tensor equals the safetensors copy bit for bit`, () => {
      const pth = parsePth(readBytes(f.file), f.file);
      const st = parseSafetensors(readBytes(f.weights), f.weights);
      expect(pth.format).toBe(f.format);
      expect([...pth.entries.keys()].sort()).toEqual([...st.entries.keys()].sort());
      for (const [name, e] of pth.entries) {
        expect(e.shape, name).toEqual(st.entries.get(name)!.shape);
        expect(pth.getFloat32(name), name).toEqual(st.getFloat32(name));
      }
      expect(pth.entries.get('bn1.num_batches_tracked')!.dtype).toBe('I64');
    });

    it(`${f.file}: C2..C5 match torchvision within 1e-4, fc.* ignored and reported`, () => {
      const c = fx.cases.find((k) => k.weights === f.weights)!;
      const model = build(c.depth, c.widthMultiplier, [fx.input.shape[1]!, fx.input.shape[2]!]);
      const tensors = tf.memory().numTensors;
      const report = importResNetWeights(model, readBytes(f.file), { source: f.file });
      expect(tf.memory().numTensors).toBe(tensors);
      expect(report.format).toBe('pth');
      expect(report.missing).toEqual([]);
      expect(report.ignored).toEqual(expect.arrayContaining(['fc.weight', 'fc.bias']));
      const { abs, rel } = compare(model, fx.input, c.features);
      console.log(`${f.file}: max abs diff ${abs.toExponential(2)}, relative ${rel.toExponential(2)}`);
      // Relative to the largest output: these random-weight fixtures reach values of several
      // hundred, where float32's own spacing is above 1e-5 (the safetensors parity test does the same).
      expect(rel).toBeLessThan(1e-4);
    });
  }

  it('a ResNet18 checkpoint in a ResNet50 model names the mismatching keys and changes nothing', () => {
    const model = build(50, 1 / 32, [32, 32]);
    const before = model.getLayer('backbone.body.conv1').getWeights()[0]!.dataSync().slice();
    let err: unknown;
    try {
      importResNetWeights(model, readBytes('resnet18_w16.pth'), { source: 'r18.pth' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightImportError);
    const msg = (err as Error).message;
    expect(msg.startsWith('r18.pth: ')).toBe(true);
    // A bottleneck's third conv exists only in ResNet50; the ResNet18 widths do not fit either.
    expect(msg).toMatch(/layer1\.0\.conv1\.weight: torch shape \[4,4,3,3\] does not fit/);
    expect(model.getLayer('backbone.body.conv1').getWeights()[0]!.dataSync()).toEqual(before);
  });
});

/** The PyTorch zip with its data.pkl replaced. */
function withPickle(zip: Uint8Array, edit: (pkl: Uint8Array) => Uint8Array): Uint8Array {
  const files: Record<string, Uint8Array> = unzipSync(zip);
  const name = Object.keys(files).find((n) => n.endsWith('/data.pkl'))!;
  files[name] = edit(files[name]!);
  return zipSync(files, { level: 0 });
}

const ascii = (s: string) => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};
/** GLOBAL 'os system', the argument tuple ('echo pwned',), REDUCE, POP: `os.system('echo pwned')` in Python. */
const OS_SYSTEM = concat(
  ascii('cos\nsystem\n'),
  new Uint8Array([0x8c, 10]),
  ascii('echo pwned'),
  new Uint8Array([0x85, 0x52, 0x30]),
);
/** Right after PROTO 2, before the state dict's own opcodes. */
const inject = (pkl: Uint8Array, code: Uint8Array) => concat(pkl.subarray(0, 2), code, pkl.subarray(2));

describe('unsafe pickles are refused, nothing is executed', () => {
  it("a GLOBAL 'os system' + REDUCE injected into data.pkl is refused, naming the file and the global", () => {
    const bytes = withPickle(readBytes('resnet18_w16.pth'), (p) => inject(p, OS_SYSTEM));
    expect(() => parsePth(bytes, 'evil.pth')).toThrow(PickleError);
    expect(() => parsePth(bytes, 'evil.pth')).toThrow(
      /^evil\.pth \(.*data\.pkl\): pickle byte 2: refusing global 'os system'/,
    );
    const model = build(18, 1 / 16, [32, 32]);
    expect(() => importResNetWeights(model, bytes, { source: 'evil.pth' })).toThrow(
      /refusing global 'os system'/,
    );
  });

  it('the same in a legacy (non-zip) checkpoint', () => {
    const bytes = readBytes('resnet18_w16_legacy.pth');
    // The state dict pickle is the fourth one; its PROTO sits right after the third STOP.
    let stops = 0;
    let at = -1;
    for (let i = 0, n = 0; i < bytes.length && at < 0; i++) {
      // The first three pickles are tiny and hold no binary data that could contain 0x2e 0x80.
      if (bytes[i] === 0x2e && bytes[i + 1] === 0x80 && ++n === 3) at = i + 1;
      stops = n;
    }
    expect(stops).toBe(3);
    const evil = concat(bytes.subarray(0, at + 2), OS_SYSTEM, bytes.subarray(at + 2));
    expect(() => parsePth(evil, 'old.pth')).toThrow(
      /^old\.pth \(state dict pickle\).*refusing global 'os system'/,
    );
  });

  it('STACK_GLOBAL and other code-running opcodes are refused too', () => {
    const zip = readBytes('resnet18_w16.pth');
    const stackGlobal = concat(
      new Uint8Array([0x8c, 8]),
      ascii('builtins'),
      new Uint8Array([0x8c, 4]),
      ascii('eval'),
      new Uint8Array([0x93]),
    );
    expect(() =>
      parsePth(
        withPickle(zip, (p) => inject(p, stackGlobal)),
        'a.pth',
      ),
    ).toThrow(/refusing global 'builtins eval'/);
    // INST 'os system' (protocol 0 instantiation) and NEWOBJ are not state-dict opcodes.
    expect(() =>
      parsePth(
        withPickle(zip, (p) => inject(p, ascii('(ios\nsystem\n'))),
        'b.pth',
      ),
    ).toThrow(/refusing opcode INST/);
    expect(() =>
      parsePth(
        withPickle(zip, (p) => inject(p, new Uint8Array([0x81]))),
        'c.pth',
      ),
    ).toThrow(/refusing opcode NEWOBJ/);
  });

  it('a torchvision class or function outside the allow-list is refused by name', () => {
    const zip = readBytes('resnet18_w16.pth');
    const g = ascii('ctorchvision.models.resnet\nResNet\n');
    expect(() =>
      parsePth(
        withPickle(zip, (p) => inject(p, g)),
        'model.pth',
      ),
    ).toThrow(/refusing global 'torchvision\.models\.resnet ResNet'/);
  });
});

describe('format detection', () => {
  it('tells .pth from safetensors by the first bytes, also for headers whose length starts with 0x80', () => {
    expect(looksLikePth(readBytes('resnet18_w16.pth'))).toBe(true);
    expect(looksLikePth(readBytes('resnet18_w16_legacy.pth'))).toBe(true);
    expect(looksLikePth(readBytes('resnet18_w16.safetensors'))).toBe(false);
    // A safetensors header of 0x0580 = 1408 bytes: its first two bytes are those of a pickle PROTO 5.
    const header = new TextEncoder().encode(
      JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }).padEnd(1408, ' '),
    );
    const st = new Uint8Array(8 + 1408 + 4);
    new DataView(st.buffer).setBigUint64(0, 1408n, true);
    st.set(header, 8);
    expect([st[0], st[1]]).toEqual([0x80, 0x05]);
    expect(looksLikePth(st)).toBe(false);
    const model = build(18, 1 / 16, [32, 32]);
    expect(() => importResNetWeights(model, st, { source: 'odd.safetensors' })).toThrow(
      /^odd\.safetensors: no ResNet 'conv1\.weight'/,
    );
  });
});

describe('broken files', () => {
  it('truncated archives, missing storages and non-checkpoints fail with the file named', () => {
    const zip = readBytes('resnet18_w16.pth');
    expect(() => parsePth(zip.subarray(0, zip.length - 100), 'cut.pth')).toThrow(/^cut\.pth: /);
    const files = unzipSync(zip);
    for (const n of Object.keys(files)) if (/\/data\/\d+$/.test(n)) delete files[n];
    expect(() => parsePth(zipSync(files, { level: 0 }), 'gap.pth').getFloat32('conv1.weight')).toThrow(
      /^gap\.pth: storage '.*data\/\d+' is missing from the archive/,
    );
    const legacy = readBytes('resnet18_w16_legacy.pth');
    expect(() => parsePth(legacy.subarray(0, legacy.length - 10), 'short.pth')).toThrow(
      /^short\.pth: storage \d+ is truncated/,
    );
    expect(() => parsePth(ascii('hello'), 'x.pth')).toThrow(/^x\.pth: not a PyTorch checkpoint/);
    const model = build(18, 1 / 16, [32, 32]);
    expect(() => importResNetWeights(model, ascii('hello'), { source: 'x.bin' })).toThrow(/^x\.bin: /);
  });
});

// ------------------------------------------------------------------ full-size torchvision ResNets
const ROOT = resolve(FIXTURES, '../../../..');
const hasTorch =
  spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision, numpy'], { stdio: 'ignore' }).status === 0;
if (!hasTorch) {
  console.log(
    'skipping the full-size ResNet18/50 .pth + safetensors parity: /usr/bin/python3 has no torch/torchvision ' +
      '(apt-get install python3-torch python3-torchvision)',
  );
}

describe.skipIf(!hasTorch)('full-size torchvision ResNet18 / ResNet50 (written at test time)', () => {
  let dir = '';
  let ref: {
    input: ArrayFixture;
    cases: Array<{ depth: ResNetDepth; pth: string; safetensors: string; features: ArrayFixture[] }>;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'bmc-pth-'));
    execFileSync('/usr/bin/python3', [join(ROOT, 'tooling/fixtures/pth_fixtures.py'), '--full', dir], {
      stdio: 'inherit',
    });
    ref = JSON.parse(readFileSync(join(dir, 'full_parity.json'), 'utf8'));
  }, 120_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const depth of [18, 50] as ResNetDepth[]) {
    for (const format of ['pth', 'safetensors'] as const) {
      it(`ResNet${depth} ${format}: C2..C5 equal torchvision's within 1e-4`, () => {
        const c = ref.cases.find((k) => k.depth === depth)!;
        const model = build(depth, 1, [ref.input.shape[1]!, ref.input.shape[2]!]);
        const file = join(dir, c[format]);
        const report = importResNetWeights(model, new Uint8Array(readFileSync(file)), { source: file });
        expect(report.format).toBe(format);
        expect(report.missing).toEqual([]);
        expect(report.unexpected).toEqual([]);
        const { abs, rel } = compare(model, ref.input, c.features);
        console.log(
          `full ResNet${depth} ${format}: ${report.loaded.length} tensors, max abs diff ${abs.toExponential(2)}, relative ${rel.toExponential(2)}`,
        );
        // Calibrated BatchNorm keeps these outputs near unit scale, so the absolute bound is meaningful.
        expect(abs).toBeLessThan(1e-4);
        expect(rel).toBeLessThan(1e-4);
      }, 120_000);
    }
  }
});
