import { describe, expect, it } from 'vitest';
import { parseSafetensors, SafetensorsError, writeSafetensors } from '../src/safetensors.js';
import { readBytes } from './helpers.js';

/** Builds a file from a raw header object and data bytes, for corrupt-file cases. */
function file(header: unknown, data: Uint8Array, headerLen?: number): Uint8Array {
  const h = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors', () => {
  it('reads the file torch wrote (F32 and I64 entries)', () => {
    const f = parseSafetensors(readBytes('resnet18_w16.safetensors'));
    expect(f.entries.get('conv1.weight')!.shape).toEqual([4, 3, 7, 7]);
    expect(f.entries.get('bn1.num_batches_tracked')!.dtype).toBe('I64');
    expect(f.getFloat32('bn1.num_batches_tracked')).toEqual(new Float32Array([0]));
    expect(f.getFloat32('conv1.weight').length).toBe(4 * 3 * 49);
  });

  it('round-trips through the writer with metadata', () => {
    const data = new Float32Array([1, -2.5, 3, 4, 5, 6]);
    const bytes = writeSafetensors(
      { b: { shape: [2, 3], data }, a: { shape: [], data: new Float32Array([7]) } },
      { k: 'v' },
    );
    expect((bytes.length - 8) % 4).toBe(0);
    const f = parseSafetensors(bytes);
    expect(f.metadata).toEqual({ k: 'v' });
    expect([...f.entries.keys()]).toEqual(['a', 'b']);
    expect(f.getFloat32('b')).toEqual(data);
    expect(f.getFloat32('a')).toEqual(new Float32Array([7]));
  });

  it('converts F16, BF16 and F64', () => {
    // F16 0x3C00 = 1, 0xC000 = -2, 0x3555 ~ 0.33325; BF16 0x3F80 = 1, 0xC040 = -3; F64 0.1.
    const raw = new Uint8Array(6 + 4 + 8);
    const v = new DataView(raw.buffer);
    v.setUint16(0, 0x3c00, true);
    v.setUint16(2, 0xc000, true);
    v.setUint16(4, 0x3555, true);
    v.setUint16(6, 0x3f80, true);
    v.setUint16(8, 0xc040, true);
    v.setFloat64(10, 0.1, true);
    const f = parseSafetensors(
      file(
        {
          h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] },
          b: { dtype: 'BF16', shape: [2], data_offsets: [6, 10] },
          d: { dtype: 'F64', shape: [1], data_offsets: [10, 18] },
        },
        raw,
      ),
    );
    expect([...f.getFloat32('h')]).toEqual([1, -2, Math.fround(0.333251953125)]);
    expect([...f.getFloat32('b')]).toEqual([1, -3]);
    expect(f.getFloat32('d')[0]).toBeCloseTo(0.1, 7);
  });

  const ok = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['too short', new Uint8Array(5), /too short/],
    ['header past the end', file(ok, new Uint8Array(8), 10_000), /runs past the end/],
    ['huge header length', file(ok, new Uint8Array(8), 2 ** 40), /exceeds/],
    ['not JSON', file('{"t": ', new Uint8Array(8)), /not valid UTF-8 JSON/],
    ['JSON array', file([1, 2], new Uint8Array(0)), /not a JSON object/],
    [
      'unknown dtype',
      file({ t: { dtype: 'F8', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /'t': unknown dtype F8/,
    ],
    [
      'bad shape',
      file({ t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /'t': shape/,
    ],
    [
      'size mismatch',
      file({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /8 bytes for shape \[3\]/,
    ],
    ['truncated data', file(ok, new Uint8Array(4)), /run past the data .*truncated/],
    [
      'overlap',
      file(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
      ),
      /'b' overlaps/,
    ],
    [
      'gap',
      file({ t: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)),
      /gap of 4 bytes before entry 't'/,
    ],
    ['trailing bytes', file(ok, new Uint8Array(12)), /4 bytes after the last tensor/],
    [
      'reversed offsets',
      file({ t: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)),
      /end before/,
    ],
    ['bad metadata', file({ __metadata__: { a: 1 } }, new Uint8Array(0)), /__metadata__\.a is not a string/],
  ];
  for (const [name, bytes, re] of cases) {
    it(`rejects a corrupt file: ${name}`, () => {
      expect(() => parseSafetensors(bytes, 'x.safetensors')).toThrow(SafetensorsError);
      expect(() => parseSafetensors(bytes, 'x.safetensors')).toThrow(re);
      expect(() => parseSafetensors(bytes, 'x.safetensors')).toThrow(/^x\.safetensors: /);
    });
  }

  it('names the file when a tensor is absent', () => {
    const f = parseSafetensors(writeSafetensors({ a: { shape: [1], data: new Float32Array(1) } }), 'w.st');
    expect(() => f.getFloat32('zzz')).toThrow("w.st: no tensor named 'zzz'");
  });
});
