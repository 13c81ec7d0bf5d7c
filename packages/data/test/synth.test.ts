import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CELL_TYPES,
  decodeImage,
  generateSmear,
  readCoco,
  type SmearOptions,
  smearCategories,
  smearSource,
  writeSmearDataset,
} from '../src/index.js';

/** Index of the first difference, -1 when equal (cheap failure output for big arrays). */
function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

const tmp: string[] = [];
afterAll(async () => {
  for (const d of tmp) await rm(d, { recursive: true, force: true });
});
async function tempDir() {
  const d = await mkdtemp(join(tmpdir(), 'bmc-smear-'));
  tmp.push(d);
  return d;
}

const SMALL: SmearOptions = { width: 160, height: 128, cellSize: [18, 40] };

describe('synthetic smear generator', () => {
  it('same seed gives identical files (PNG bytes and COCO JSON); another seed differs', async () => {
    const [a, b, c] = [await tempDir(), await tempDir(), await tempDir()];
    const opts = { ...SMALL, seed: 42, splits: { train: 3, val: 1 } };
    await writeSmearDataset(a, opts);
    await writeSmearDataset(b, opts);
    await writeSmearDataset(c, { ...opts, seed: 43 });
    const files = (await readdir(join(a, 'images', 'train'))).sort();
    expect(files.length).toBe(3);
    for (const f of files) {
      const pa = await readFile(join(a, 'images', 'train', f));
      expect(pa.equals(await readFile(join(b, 'images', 'train', f)))).toBe(true);
      expect(pa.equals(await readFile(join(c, 'images', 'train', f)))).toBe(false);
    }
    expect(await readFile(join(a, 'train.json'), 'utf8')).toBe(await readFile(join(b, 'train.json'), 'utf8'));
  });

  it('random access: sample i does not depend on which samples were drawn before', () => {
    const direct = generateSmear(5, 7, SMALL);
    generateSmear(5, 3, SMALL);
    const again = generateSmear(5, 7, SMALL);
    expect(firstDiff(again.image.data, direct.image.data)).toBe(-1);
    expect(again.boxes).toEqual(direct.boxes);
  });

  it('every box is tight around its cell: each box edge touches a pixel the cell changed', () => {
    // Independent of the debug masks: with no red cells, blur or noise, the pixels that differ
    // from the same field rendered without cells are exactly what the cells drew.
    const base: SmearOptions = { ...SMALL, rbcDensity: 0, blur: [0, 0], noise: [0, 0], overlap: 0 };
    for (let i = 0; i < 6; i++) {
      const s = generateSmear(11, i, base);
      const empty = generateSmear(11, i, { ...base, density: 0 });
      const W = s.image.width;
      const changed = (x: number, y: number) => {
        const o = (y * W + x) * 3;
        return s.image.data[o] !== empty.image.data[o] || s.image.data[o + 1] !== empty.image.data[o + 1];
      };
      expect(s.labels.length).toBeGreaterThan(0);
      const inAnyBox = (x: number, y: number) => {
        for (let k = 0; k < s.labels.length; k++) {
          const [x1, y1, x2, y2] = s.boxes.subarray(4 * k, 4 * k + 4);
          if (x >= x1! && x < x2! && y >= y1! && y < y2!) return true;
        }
        return false;
      };
      for (let y = 0; y < s.image.height; y++) {
        for (let x = 0; x < W; x++)
          if (changed(x, y)) expect(inAnyBox(x, y), `pixel ${x},${y} of image ${i}`).toBe(true);
      }
      for (let k = 0; k < s.labels.length; k++) {
        const [x1, y1, x2, y2] = Array.from(s.boxes.subarray(4 * k, 4 * k + 4));
        const row = (y: number) =>
          Array.from({ length: x2! - x1! }, (_, j) => changed(x1! + j, y)).some(Boolean);
        const col = (x: number) =>
          Array.from({ length: y2! - y1! }, (_, j) => changed(x, y1! + j)).some(Boolean);
        expect([row(y1!), row(y2! - 1), col(x1!), col(x2! - 1)], `box ${k} of image ${i}`).toEqual([
          true,
          true,
          true,
          true,
        ]);
      }
    }
  });

  it('debug masks: each box is exactly the bounding box of its mask, with blur, noise and red cells on', () => {
    for (let i = 0; i < 4; i++) {
      const s = generateSmear(3, i, { ...SMALL, debugMasks: true, density: 0.5, overlap: 0.3 });
      expect(s.masks!.length).toBe(s.labels.length);
      s.masks!.forEach((m, k) => {
        const cols = new Set<number>();
        const rows = new Set<number>();
        m.data.forEach((v, j) => {
          if (v) {
            cols.add(j % m.width);
            rows.add(Math.floor(j / m.width));
          }
        });
        expect([Math.min(...cols), Math.max(...cols), Math.min(...rows), Math.max(...rows)]).toEqual([
          0,
          m.width - 1,
          0,
          m.height - 1,
        ]);
        expect(Array.from(s.boxes.subarray(4 * k, 4 * k + 4))).toEqual([
          m.x0,
          m.y0,
          m.x0 + m.width,
          m.y0 + m.height,
        ]);
      });
    }
  });

  it('band cells: the box centre falls on cytoplasm, not on the U-shaped nucleus', () => {
    let bands = 0;
    for (let i = 0; i < 10; i++) {
      const s = generateSmear(9, i, {
        ...SMALL,
        typeWeights: { band: 1, blast: 0, lymphocyte: 0, segmented: 0, eosinophil: 0, plasma: 0 },
        debugMasks: true,
      });
      for (let k = 0; k < s.labels.length; k++) {
        expect(CELL_TYPES[s.labels[k]!]).toBe('band');
        bands++;
        const [x1, y1, x2, y2] = s.boxes.subarray(4 * k, 4 * k + 4);
        const cx = Math.floor((x1! + x2!) / 2);
        const cy = Math.floor((y1! + y2!) / 2);
        const body = s.masks![k]!;
        const nuc = s.nucleusMasks![k]!;
        const at = (m: typeof nuc) => m.data[(cy - m.y0) * m.width + (cx - m.x0)];
        expect(at(body), `band ${k} in image ${i}: centre inside the cell`).toBe(1);
        expect(at(nuc), `band ${k} in image ${i}: centre not on nucleus`).toBe(0);
      }
    }
    expect(bands).toBeGreaterThan(30);
  });

  it('draws every cell type, sized within cellSize (+1 px anti-aliasing)', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 8; i++) {
      const s = generateSmear(1, i, SMALL);
      s.labels.forEach((l, k) => {
        seen.add(l);
        const w = s.boxes[4 * k + 2]! - s.boxes[4 * k]!;
        const h = s.boxes[4 * k + 3]! - s.boxes[4 * k + 1]!;
        expect(Math.max(w, h)).toBeLessThanOrEqual(40 * 1.08 + 2);
        expect(Math.max(w, h)).toBeGreaterThanOrEqual(18 * 0.85);
      });
    }
    expect(seen.size).toBe(CELL_TYPES.length);
  });

  it('the density knob sets how many cells there are', () => {
    const count = (density: number) =>
      Array.from({ length: 4 }, (_, i) => generateSmear(2, i, { ...SMALL, density }).labels.length).reduce(
        (a, b) => a + b,
      );
    expect(count(0.1)).toBeLessThan(count(0.3));
    expect(count(0.3)).toBeLessThan(count(0.5));
  });

  it('labelRbc boxes the red cells too, as an extra category', async () => {
    const plain = generateSmear(6, 0, SMALL);
    const withRbc = generateSmear(6, 0, { ...SMALL, labelRbc: true });
    const rbc = Array.from(withRbc.labels).filter((l) => l === CELL_TYPES.length).length;
    expect(rbc).toBeGreaterThan(10);
    expect(withRbc.labels.length - rbc).toBe(plain.labels.length);
    expect(firstDiff(withRbc.image.data, plain.image.data)).toBe(-1);
    expect(smearCategories('type', true).map((c) => c.name)).toEqual([...CELL_TYPES, 'rbc']);
  });

  it('smearSource cache: same boxes, pixels within 8-bit rounding, identical across epochs', async () => {
    const opts = { ...SMALL, count: 2, seed: 4 };
    const fresh = await smearSource(opts).load(1, 160, 128);
    const cached = smearSource({ ...opts, cache: true });
    const a = await cached.load(1, 160, 128);
    const b = await cached.load(1, 160, 128);
    expect(a.boxes).toEqual(fresh.boxes);
    expect(firstDiff(b.image.data, a.image.data)).toBe(-1);
    let max = 0;
    for (let i = 0; i < a.image.data.length; i++)
      max = Math.max(max, Math.abs(a.image.data[i]! - fresh.image.data[i]!));
    expect(max).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
  });

  it('edge cells: boxes stay inside the image', () => {
    const s = generateSmear(4, 0, { ...SMALL, edgeCells: true, density: 0.5 });
    for (let k = 0; k < s.labels.length; k++) {
      const [x1, y1, x2, y2] = s.boxes.subarray(4 * k, 4 * k + 4);
      expect(x1! >= 0 && y1! >= 0 && x2! <= 160 && y2! <= 128).toBe(true);
    }
  });

  it('written dataset reads back through readCoco (strict) with the in-memory boxes and pixels', async () => {
    const d = await tempDir();
    await writeSmearDataset(d, { ...SMALL, seed: 8, splits: { train: 2 }, categories: 'type' });
    const ds = await readCoco(join(d, 'train.json'), { policy: 'strict' });
    expect(ds.categories.map((c) => c.name)).toEqual([...CELL_TYPES]);
    for (let i = 0; i < 2; i++) {
      const mem = generateSmear(8, i, SMALL);
      expect(ds.images[i]!.boxes).toEqual(mem.boxes);
      expect(ds.images[i]!.labels).toEqual(mem.labels);
      const png = await decodeImage(ds.images[i]!.file);
      let max = 0;
      for (let j = 0; j < png.data.length; j++)
        max = Math.max(max, Math.abs(png.data[j]! - mem.image.data[j]!));
      expect(max).toBeLessThanOrEqual(0.5 / 255 + 1e-6);
    }
  });
});
