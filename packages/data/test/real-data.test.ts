import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { countBoxes, type Dataset, readCoco, readVoc, readYolo, writeCoco } from '../src/index.js';
import { sharedDataDir } from './shared-data.js';

const data = sharedDataDir();
if (!data) console.warn('real-data tests skipped: ../shared/data (or $BMC_SHARED_DATA) not found');

// Expected numbers are the published counts in /work/shared/data/README.md, not our output.
// Skipped (with the warning above) for users outside this repository layout, where the data is absent.
describe.skipIf(!data)('BCCD (Pascal VOC)', () => {
  const root = join(data ?? '', 'bccd');

  it('reads 364 images and 4888 boxes with per-class counts, strict policy', async () => {
    const ds = await readVoc(root, { policy: 'strict' });
    expect(ds.images.length).toBe(364);
    const c = countBoxes(ds);
    expect(c.total).toBe(4888);
    expect(c.perCategory).toEqual({ Platelets: 361, RBC: 4155, WBC: 372 });
    expect(ds.images.every((i) => i.width === 640 && i.height === 480)).toBe(true);
    expect(ds.report.issues).toEqual([]);
  });

  it('official splits are 205 / 87 / 72 and share label indices', async () => {
    const sizes: Record<string, number> = {};
    for (const split of ['train', 'val', 'test']) {
      const ds = await readVoc(root, { split, checkImages: false });
      sizes[split] = ds.images.length;
      expect(ds.categories.map((c) => c.name)).toEqual(['Platelets', 'RBC', 'WBC']);
    }
    expect(sizes).toEqual({ train: 205, val: 87, test: 72 });
  });

  it('converts VOC 1-based inclusive pixels: the two 1x1 px RBC boxes are 1 px wide, and minBoxSize reports them', async () => {
    // BloodImage_00338.xml has xmin=xmax=504, ymin=ymax=337: one pixel, column 503 / row 336 0-based.
    const ds = await readVoc(root, { checkImages: false });
    const img = ds.images.find((i) => i.source!.endsWith('BloodImage_00338.xml'))!;
    const rows = Array.from({ length: img.labels.length }, (_, k) =>
      Array.from(img.boxes.subarray(4 * k, 4 * k + 4)),
    );
    expect(rows).toContainEqual([503, 336, 504, 337]);
    const lenient = await readVoc(root, { policy: 'lenient', minBoxSize: 2, checkImages: false });
    expect(lenient.report.issues.map((i) => [i.file.split('/').pop(), i.action])).toEqual([
      ['BloodImage_00338.xml', 'dropped-box'],
      ['BloodImage_00343.xml', 'dropped-box'],
    ]);
    expect(countBoxes(lenient).total).toBe(4886);
  });

  it('round-trips VOC -> COCO -> reader with identical boxes, labels and flags', async () => {
    const voc = await readVoc(root, { checkImages: false });
    const dir = await mkdtemp(join(tmpdir(), 'bmc-bccd-'));
    try {
      const out = join(dir, 'bccd.json');
      await writeCoco(voc, out, { imageRoot: join(root, 'JPEGImages') });
      const coco = await readCoco(out, { imageRoot: join(root, 'JPEGImages'), policy: 'strict' });
      expect(coco.categories).toEqual(voc.categories);
      expect(coco.images.length).toBe(voc.images.length);
      coco.images.forEach((img, i) => {
        const ref = voc.images[i]!;
        expect(img.file).toBe(ref.file);
        expect(img.boxes).toEqual(ref.boxes);
        expect(img.labels).toEqual(ref.labels);
        expect(img.difficult).toEqual(ref.difficult);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!data)('TXL-PBC (YOLO)', () => {
  const root = join(data ?? '', 'txl-pbc');
  // One strict read per split (1440 image headers in all); the totals are their union.
  const splits: Record<string, Dataset> = {};
  beforeAll(async () => {
    for (const split of ['train', 'val', 'test'])
      splits[split] = await readYolo(root, { split, policy: 'strict' });
  }, 120_000);

  it('reads 1440 images and 26,637 boxes, strict policy, labelImg classes.txt ignored', () => {
    const all: Dataset = {
      categories: splits.train!.categories,
      images: Object.values(splits).flatMap((d) => d.images),
      report: { issues: Object.values(splits).flatMap((d) => d.report.issues) },
    };
    expect(all.images.length).toBe(1440);
    const c = countBoxes(all);
    expect(c.total).toBe(26637);
    expect(c.perCategory).toEqual({ WBC: 1515, RBC: 24271, Platelets: 851 });
    expect(all.report.issues).toEqual([]);
  });

  it('splits are 1008 / 288 / 144', () => {
    const sizes = Object.fromEntries(Object.entries(splits).map(([k, d]) => [k, d.images.length]));
    expect(sizes).toEqual({ train: 1008, val: 288, test: 144 });
  });

  it('round-trips YOLO -> COCO -> reader (float boxes preserved)', async () => {
    const yolo = splits.test!;
    const dir = await mkdtemp(join(tmpdir(), 'bmc-txl-'));
    try {
      const out = join(dir, 'test.json');
      await writeCoco(yolo, out, { imageRoot: root });
      const coco = await readCoco(out, { imageRoot: root, checkImages: false });
      coco.images.forEach((img, i) => {
        expect(img.boxes).toEqual(yolo.images[i]!.boxes);
        expect(img.labels).toEqual(yolo.images[i]!.labels);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
