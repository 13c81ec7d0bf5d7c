import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  countBoxes,
  mapCategories,
  parseCoco,
  randomSplit,
  readCoco,
  readYolo,
  renameCategories,
  writeCoco,
} from '../src/index.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('COCO', () => {
  const json = JSON.stringify({
    images: [
      { id: 10, file_name: 'a.png', width: 100, height: 80 },
      { id: 3, file_name: 'b.png', width: 50, height: 40 },
    ],
    annotations: [
      { id: 7, image_id: 10, category_id: 12, bbox: [10, 20, 30, 15], iscrowd: 0 },
      { id: 8, image_id: 10, category_id: 5, bbox: [0, 0, 100, 80], iscrowd: 1 },
      { id: 9, image_id: 3, category_id: 12, bbox: [1.5, 2.5, 3, 4], iscrowd: 0 },
    ],
    categories: [
      { id: 12, name: 'blast' },
      { id: 5, name: 'rbc' },
    ],
  });

  it('keeps non-contiguous ids, maps category ids to label indices, converts xywh to xyxy', async () => {
    const ds = await parseCoco(json, '/data/x.json', { checkImages: false });
    expect(ds.categories).toEqual([
      { id: 12, name: 'blast' },
      { id: 5, name: 'rbc' },
    ]);
    expect(ds.images.map((i) => i.id)).toEqual([10, 3]);
    expect(ds.images[0]!.file).toBe('/data/a.png');
    // [10, 20, 30, 15] xywh -> [10, 20, 40, 35] xyxy
    expect(Array.from(ds.images[0]!.boxes)).toEqual([10, 20, 40, 35, 0, 0, 100, 80]);
    expect(Array.from(ds.images[0]!.labels)).toEqual([0, 1]);
    expect(Array.from(ds.images[0]!.iscrowd)).toEqual([0, 1]);
    expect(Array.from(ds.images[1]!.boxes)).toEqual([1.5, 2.5, 4.5, 6.5]);
  });

  it('writer and reader round-trip, with original category ids', async () => {
    const ds = await parseCoco(json, '/data/x.json', { checkImages: false });
    const dir = await mkdtemp(join(tmpdir(), 'bmc-coco-'));
    dirs.push(dir);
    await writeCoco(ds, join(dir, 'out.json'), { imageRoot: '/data' });
    const back = await readCoco(join(dir, 'out.json'), { imageRoot: '/data', checkImages: false });
    expect(back.categories).toEqual(ds.categories);
    back.images.forEach((img, i) => {
      expect(img.boxes).toEqual(ds.images[i]!.boxes);
      expect(img.labels).toEqual(ds.images[i]!.labels);
      expect(img.iscrowd).toEqual(ds.images[i]!.iscrowd);
    });
  });

  it('category mapping: single class, renames and merges', async () => {
    const ds = await parseCoco(json, '/data/x.json', { checkImages: false });
    const one = mapCategories(ds, 'single');
    expect(one.categories).toEqual([{ id: 1, name: 'cell' }]);
    expect(countBoxes(one)).toEqual({ total: 3, perCategory: { cell: 3 } });
    expect(mapCategories(ds, 'keep')).toBe(ds);
    const merged = renameCategories(ds, { rbc: 'blast' });
    expect(merged.categories.map((c) => c.name)).toEqual(['blast']);
    expect(countBoxes(merged).perCategory).toEqual({ blast: 3 });
  });

  it('seeded random split: disjoint, complete, proportional, reproducible', async () => {
    const images = Array.from({ length: 103 }, (_, i) => ({
      id: i,
      file: `${i}.png`,
      width: 1,
      height: 1,
      boxes: new Float32Array(0),
      labels: new Int32Array(0),
      iscrowd: new Uint8Array(0),
      difficult: new Uint8Array(0),
    }));
    const ds = { categories: [], images, report: { issues: [] } };
    const s = randomSplit(ds, { train: 0.7, val: 0.2, test: 0.1 }, 1);
    // floor(72.1) = 72 + remainder 1, floor(20.6) = 20, floor(10.3) = 10.
    expect([s.train.images.length, s.val.images.length, s.test.images.length]).toEqual([73, 20, 10]);
    const ids = [...s.train.images, ...s.val.images, ...s.test.images].map((i) => i.id).sort((a, b) => a - b);
    expect(ids).toEqual(images.map((i) => i.id));
    expect(randomSplit(ds, { train: 0.7, val: 0.2, test: 0.1 }, 1).val.images).toEqual(s.val.images);
    expect(randomSplit(ds, { train: 0.7, val: 0.2, test: 0.1 }, 2).val.images).not.toEqual(s.val.images);
  });
});

describe('YOLO', () => {
  it('reads normalised cx cy w h against each image size; names as a mapping; no label file = no boxes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bmc-yolo-'));
    dirs.push(root);
    for (const split of ['train', 'val']) {
      await mkdir(join(root, 'images', split), { recursive: true });
      await mkdir(join(root, 'labels', split), { recursive: true });
    }
    await writeFile(
      join(root, 'data.yaml'),
      'path: .\ntrain: images/train\nval: images/val\nnames:\n  0: WBC\n  1: RBC\n',
    );
    const png = (w: number, h: number) =>
      sharp({ create: { width: w, height: h, channels: 3, background: '#ccc' } })
        .png()
        .toBuffer();
    await writeFile(join(root, 'images', 'train', 'a.png'), await png(200, 100));
    await writeFile(join(root, 'images', 'train', 'b.png'), await png(50, 50));
    await writeFile(join(root, 'images', 'val', 'c.png'), await png(64, 64));
    // cx 0.5, cy 0.5, w 0.2, h 0.4 on 200 x 100 -> [80, 30, 120, 70]
    await writeFile(join(root, 'labels', 'train', 'a.txt'), '1 0.5 0.5 0.2 0.4\n0 0.25 0.25 0.5 0.5\n');
    await writeFile(join(root, 'labels', 'val', 'c.txt'), '0 0.5 0.5 1 1\n');
    await writeFile(join(root, 'labels', 'val', 'orphan.txt'), '0 0.5 0.5 1 1\n');
    const all = await readYolo(root, { policy: 'lenient' });
    expect(all.categories.map((c) => c.name)).toEqual(['WBC', 'RBC']);
    expect(all.images.map((i) => i.file.split('/').pop())).toEqual(['a.png', 'b.png', 'c.png']);
    expect(Array.from(all.images[0]!.boxes)).toEqual([80, 30, 120, 70, 0, 0, 100, 50]);
    expect(Array.from(all.images[0]!.labels)).toEqual([1, 0]);
    expect(all.images[1]!.labels.length).toBe(0);
    expect(all.report.issues).toEqual([
      expect.objectContaining({ problem: 'label file has no matching image', action: 'ignored' }),
    ]);
    await expect(readYolo(root, { policy: 'strict' })).rejects.toThrow(
      /orphan\.txt: label file has no matching image/,
    );
    expect((await readYolo(join(root, 'data.yaml'), { split: 'train' })).images.length).toBe(2);
  });

  it('takes a split from a .txt image list (paths relative to the list) that combines folders', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bmc-yolo-list-'));
    dirs.push(root);
    for (const d of ['a/images', 'a/labels', 'b/images', 'b/labels', 'lists']) {
      await mkdir(join(root, d), { recursive: true });
    }
    const png = sharp({ create: { width: 100, height: 50, channels: 3, background: '#ccc' } }).png();
    await writeFile(join(root, 'a/images/x.png'), await png.toBuffer());
    await writeFile(join(root, 'a/images/unlisted.png'), await png.toBuffer());
    await writeFile(join(root, 'b/images/y.png'), await png.toBuffer());
    // cx 0.5, cy 0.5, w 0.2, h 0.4 on 100 x 50 -> [40, 15, 60, 35]
    await writeFile(join(root, 'a/labels/x.txt'), '0 0.5 0.5 0.2 0.4\n');
    await writeFile(join(root, 'b/labels/y.txt'), '0 0.5 0.5 1 1\n0 0.5 0.5 0.2 0.4\n');
    await writeFile(join(root, 'lists/train.txt'), '# by source\n../a/images/x.png\n\n../b/images/y.png\n');
    await writeFile(join(root, 'lists/bad.txt'), '../a/labels/x.txt\n');
    await writeFile(
      join(root, 'lists/data.yaml'),
      'train: train.txt\nval: bad.txt\ntest: none.txt\nnames: [cell]\n',
    );
    const ds = await readYolo(join(root, 'lists/data.yaml'), { split: 'train' });
    expect(ds.images.map((i) => i.file)).toEqual([
      join(root, 'a/images/x.png'),
      join(root, 'b/images/y.png'),
    ]);
    expect(Array.from(ds.images[0]!.boxes)).toEqual([40, 15, 60, 35]);
    expect(ds.images[1]!.labels.length).toBe(2);
    await expect(readYolo(join(root, 'lists/data.yaml'), { split: 'val' })).rejects.toThrow(
      /bad\.txt: line 1: not an image path: "\.\.\/a\/labels\/x\.txt"/,
    );
    await expect(readYolo(join(root, 'lists/data.yaml'), { split: 'test' })).rejects.toThrow(
      /image list not found: .*none\.txt/,
    );
  });
});
