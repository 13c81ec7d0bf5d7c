import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBmc as bmc, STACK } from './bmc-cli.js';
import { DATA, expectBatchAgrees, MODEL, type NamedBox, TXL } from './label-batch.js';

/**
 * `bmc label propose --classifier`: every box carries its cell type in all five formats. The
 * reference is independent of the proposal writer: `bmc detect --classifier` with the same two
 * models on the same smears (its cell-types.json). The classifier is a small one trained here with
 * `bmc classify train` on real PBC single-cell images (one epoch: its accuracy does not matter,
 * only that its calls come through each format unchanged).
 */
const PBC = join(DATA, 'pbc-cells');
const ready = existsSync(MODEL) && existsSync(TXL) && existsSync(PBC);

let dir: string;
let cls: string;
beforeAll(async () => {
  if (!ready) return;
  dir = await mkdtemp(join(tmpdir(), 'bmc-label-cls-'));
  // Three types, eight images each: enough for a run folder and an ONNX file with their names.
  for (const type of ['lymphocyte', 'platelet', 'segmented_neutrophil']) {
    await mkdir(join(dir, 'cells', type), { recursive: true });
    const files = (await readdir(join(PBC, type))).sort().slice(0, 8);
    for (const f of files) await symlink(join(PBC, type, f), join(dir, 'cells', type, f));
  }
  const t = await bmc([
    'classify',
    'train',
    '--folders',
    join(dir, 'cells'),
    '--out',
    join(dir, 'cls-run'),
    '--epochs',
    '1',
    '--crop-size',
    '32',
    '--batch',
    '6',
  ]);
  if (t.code !== 0) throw new Error(`bmc classify train: ${t.stderr}`);
  cls = join(dir, 'cls.onnx');
  const e = await bmc(['classify', 'export', join(dir, 'cls-run'), '--out', cls]);
  if (e.code !== 0) throw new Error(`bmc classify export: ${e.stderr}`);
  await mkdir(join(dir, 'smears'));
  for (const n of (await readdir(TXL)).sort().slice(0, 3))
    await symlink(join(TXL, n), join(dir, 'smears', n));
}, 600_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** `bmc label propose` of the three smears into `out`, typing each box with `classifier`. */
const propose = (out: string, classifier: string, ...flags: string[]) =>
  bmc([
    'label',
    'propose',
    '-m',
    MODEL,
    join(dir, 'smears'),
    '--out',
    out,
    '--classifier',
    classifier,
    ...flags,
  ]);

describe.skipIf(!ready)('bmc label propose --classifier', () => {
  it('writes each box with its cell type in COCO, VOC, YOLO, CVAT and Label Studio, as bmc detect --classifier calls it', async () => {
    const b = join(dir, 'batch');
    const r = await propose(b, cls, '--classifier-threshold', '0.4', '--ls-root', dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 images, \d+ proposed boxes .*cell types from cls\.onnx@[0-9a-f]{12}/);
    const manifest = JSON.parse(await readFile(join(b, 'batch.json'), 'utf8'));
    expect(manifest.classifier.classNames).toEqual(['lymphocyte', 'platelet', 'segmented_neutrophil']);
    expect(manifest.classifier.threshold).toBe(0.4);

    // Independent reference: bmc detect with the same detector and classifier.
    const d = await bmc([
      'detect',
      '-m',
      MODEL,
      join(dir, 'smears'),
      '--out',
      join(dir, 'detect'),
      '--no-annotate',
      '--classifier',
      cls,
      '--classifier-threshold',
      '0.4',
    ]);
    expect(d.code, d.stderr).toBe(0);
    const types = JSON.parse(await readFile(join(dir, 'detect', 'cell-types.json'), 'utf8')) as {
      file: string;
      cells: { box: number[]; type: string }[];
    }[];
    const ref: Record<string, NamedBox[]> = {};
    for (const im of types)
      ref[im.file.split('/').pop()!] = im.cells.map((c) => [c.type, ...c.box] as NamedBox);
    const all = Object.values(ref).flat();
    expect(all.length).toBeGreaterThan(10);
    // A one-epoch classifier still calls more than one type here: the labels are not all alike.
    expect(new Set(all.map((c) => c[0])).size).toBeGreaterThan(1);

    await expectBatchAgrees(b, ref);
    // YOLO: class ids index data.yaml's names, the classifier's types then "unclassified".
    const yaml = await readFile(join(b, 'yolo', 'data.yaml'), 'utf8');
    expect(yaml).toMatch(/lymphocyte[\s\S]*platelet[\s\S]*segmented_neutrophil[\s\S]*unclassified/);
    // Label Studio: the type is the rectangle's label, the detector's score the prediction score.
    const tasks = JSON.parse(await readFile(join(b, 'labelstudio.json'), 'utf8'));
    const first = tasks.find(
      (t: { predictions: { result: unknown[] }[] }) => t.predictions[0]!.result.length,
    );
    const region = first.predictions[0].result[0];
    expect(['lymphocyte', 'platelet', 'segmented_neutrophil', 'unclassified']).toContain(
      region.value.rectanglelabels[0],
    );
  }, 300_000);

  it('a file that is not a classifier exits 2 naming it, with no stack trace and no batch folder', async () => {
    const out = join(dir, 'bad-batch');
    const r = await propose(out, MODEL);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${MODEL}: not a bmc cell classifier`);
    expect(r.stderr).not.toMatch(STACK);
    expect(existsSync(join(out, 'batch.json'))).toBe(false);
  }, 120_000);
});
