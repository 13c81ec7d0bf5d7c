import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError, findYoloSplits, parseClassNames, readClassNames, readYolo } from '../src/index.js';
import { sharedDataDir } from './shared-data.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('class names from classes.txt / obj.names', () => {
  it('one per line; blank lines, spaces and CRLF ignored', () => {
    expect(parseClassNames('WBC\r\nRBC\n\n  Platelets  \n', 'classes.txt')).toEqual([
      'WBC',
      'RBC',
      'Platelets',
    ]);
  });
  it('an empty file or a repeated name is an error naming the file (and line)', () => {
    expect(() => parseClassNames('\n \n', '/d/obj.names')).toThrow(DataError);
    expect(() => parseClassNames('\n \n', '/d/obj.names')).toThrow(
      /\/d\/obj\.names: no class names in the file/,
    );
    expect(() => parseClassNames('a\nb\na\n', '/d/classes.txt')).toThrow(
      /\/d\/classes\.txt: line 3: class name "a" appears twice/,
    );
  });
  it('looks in the root (classes.txt before obj.names), then next to the labels', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bmc-names-'));
    dirs.push(root);
    const splits = { train: join(root, 'train', 'images') };
    await mkdir(join(root, 'train', 'labels'), { recursive: true });
    expect(await readClassNames(root, splits)).toBeUndefined();
    await writeFile(join(root, 'train', 'labels', 'classes.txt'), 'from-labelimg\n');
    expect(await readClassNames(root, splits)).toEqual({
      names: ['from-labelimg'],
      file: join(root, 'train', 'labels', 'classes.txt'),
    });
    await writeFile(join(root, 'obj.names'), 'from-darknet\n');
    expect((await readClassNames(root, splits))!.names).toEqual(['from-darknet']);
    await writeFile(join(root, 'classes.txt'), 'from-classes\n');
    expect((await readClassNames(root, splits))!.names).toEqual(['from-classes']);
  });
});

describe('classes named by id', () => {
  it('count the ids of every split, so a split that lacks a class still has all of them', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bmc-byid-'));
    dirs.push(root);
    const png = await sharp({ create: { width: 40, height: 20, channels: 3, background: '#ccc' } })
      .png()
      .toBuffer();
    for (const [split, label] of [
      ['train', '2 0.5 0.5 0.5 0.5\n'],
      ['test', '0 0.5 0.5 0.5 0.5\n'],
    ] as const) {
      await mkdir(join(root, split, 'images'), { recursive: true });
      await mkdir(join(root, split, 'labels'), { recursive: true });
      await writeFile(join(root, split, 'images', 'a.png'), png);
      await writeFile(join(root, split, 'labels', 'a.txt'), label);
    }
    const test = await readYolo(root, { split: 'test', policy: 'strict' });
    expect(test.categories.map((c) => c.name)).toEqual(['class_0', 'class_1', 'class_2']);
    expect(Array.from(test.images[0]!.boxes)).toEqual([10, 5, 30, 15]);
    expect(test.warnings![0]).toContain(`put a classes.txt with one name per line in ${root}`);
  });
});

const txl = sharedDataDir() && join(sharedDataDir()!, 'txl-pbc');
if (!txl) console.warn('YOLO layout tests on TXL-PBC skipped: ../shared/data is absent');

/**
 * The Roboflow / Darknet layout built from a few TXL-PBC images and labels (symlinks: nothing is
 * copied): `<root>/{train,valid,test}/{images,labels}`, or images and labels side by side.
 */
async function roboflowLayout(
  sideBySide = false,
): Promise<{ root: string; files: Record<string, string[]> }> {
  const root = await mkdtemp(join(tmpdir(), 'bmc-roboflow-'));
  dirs.push(root);
  const files: Record<string, string[]> = {};
  for (const [src, dst] of [
    ['train', 'train'],
    ['val', 'valid'],
    ['test', 'test'],
  ] as const) {
    const names = (await readdir(join(txl!, 'images', src))).sort().slice(0, 3);
    const imgDir = sideBySide ? join(root, dst) : join(root, dst, 'images');
    const lblDir = sideBySide ? join(root, dst) : join(root, dst, 'labels');
    await mkdir(imgDir, { recursive: true });
    await mkdir(lblDir, { recursive: true });
    for (const n of names) {
      await symlink(join(txl!, 'images', src, n), join(imgDir, n));
      const stem = basename(n, '.jpg');
      await symlink(join(txl!, 'labels', src, `${stem}.txt`), join(lblDir, `${stem}.txt`));
    }
    files[src] = names;
  }
  return { root, files };
}

describe.skipIf(!txl)('YOLO folders as users have them (TXL-PBC images, Roboflow layouts)', () => {
  /** The same images read through the dataset's own data.yaml: the reference. */
  async function reference(split: string, names: string[]) {
    const ds = await readYolo(txl!, { split, policy: 'strict' });
    return names.map((n) => ds.images.find((i) => basename(i.file) === n)!);
  }

  it('train/valid/test without data.yaml: valid is the validation split; names from classes.txt', async () => {
    const { root, files } = await roboflowLayout();
    await writeFile(join(root, 'classes.txt'), 'WBC\nRBC\nPlatelets\n');
    expect(findYoloSplits(root)).toEqual({
      train: join(root, 'train', 'images'),
      val: join(root, 'valid', 'images'),
      test: join(root, 'test', 'images'),
    });
    for (const [split, src] of [
      ['train', 'train'],
      ['val', 'val'],
      ['valid', 'val'],
      ['test', 'test'],
    ] as const) {
      const ds = await readYolo(root, { split, policy: 'strict' });
      expect(ds.categories.map((c) => c.name)).toEqual(['WBC', 'RBC', 'Platelets']);
      expect(ds.warnings).toBeUndefined();
      const ref = await reference(src, files[src]!);
      expect(ds.images.map((i) => basename(i.file))).toEqual(files[src]);
      ds.images.forEach((im, k) => {
        expect([im.width, im.height]).toEqual([ref[k]!.width, ref[k]!.height]);
        expect(Array.from(im.labels)).toEqual(Array.from(ref[k]!.labels));
        expect(Array.from(im.boxes)).toEqual(Array.from(ref[k]!.boxes));
      });
    }
    expect((await readYolo(root, { policy: 'strict' })).images).toHaveLength(9);
  });

  it('obj.names (Darknet) names the classes; without any names file they are named by id, with a warning', async () => {
    const { root } = await roboflowLayout();
    await writeFile(join(root, 'obj.names'), 'white\nred\nplatelet\n');
    expect((await readYolo(root, { split: 'train' })).categories.map((c) => c.name)).toEqual([
      'white',
      'red',
      'platelet',
    ]);
    const bare = await roboflowLayout();
    const ds = await readYolo(bare.root, { policy: 'strict' });
    // TXL-PBC's labels use ids 0..2 in these images (WBC, RBC, Platelets in its data.yaml).
    const used = new Set(ds.images.flatMap((i) => Array.from(i.labels)));
    expect(ds.categories.map((c) => c.name)).toEqual(
      Array.from({ length: Math.max(...used) + 1 }, (_, i) => `class_${i}`),
    );
    expect(ds.warnings).toHaveLength(1);
    expect(ds.warnings![0]).toMatch(
      /no data\.yaml, classes\.txt or obj\.names found.*named by id \(class_0\.\.class_2\)/,
    );
  });

  it("Roboflow's data.yaml (train: ../train/images) resolves beside the yaml, as Ultralytics does", async () => {
    const { root, files } = await roboflowLayout();
    await writeFile(
      join(root, 'data.yaml'),
      "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\nnc: 3\nnames: ['WBC', 'RBC', 'Platelets']\n\nroboflow:\n  workspace: x\n",
    );
    const ds = await readYolo(root, { split: 'val', policy: 'strict' });
    expect(ds.images.map((i) => basename(i.file))).toEqual(files.val);
    expect(ds.categories.map((c) => c.name)).toEqual(['WBC', 'RBC', 'Platelets']);
  });

  it('images beside their label files (Darknet) read the same boxes', async () => {
    const { root, files } = await roboflowLayout(true);
    await writeFile(join(root, 'classes.txt'), 'WBC\nRBC\nPlatelets\n');
    const ds = await readYolo(root, { split: 'train', policy: 'strict' });
    const ref = await reference('train', files.train!);
    expect(ds.images.map((i) => Array.from(i.boxes))).toEqual(ref.map((i) => Array.from(i.boxes)));
  });

  it('a folder with neither data.yaml nor split folders is refused with what was looked for', async () => {
    const root = await mkdtemp(join(tmpdir(), 'bmc-notyolo-'));
    dirs.push(root);
    await expect(readYolo(root)).rejects.toThrow(
      /not a YOLO dataset: no data\.yaml, and no train\/valid\/test folders with images/,
    );
  });
});
