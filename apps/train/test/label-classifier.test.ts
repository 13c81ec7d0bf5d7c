import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Dataset, readCoco, readCvat, readLabelStudio, readVoc, readYolo } from '@bmc/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `bmc label propose --classifier`: every box carries its cell type in all five formats. The
 * reference is independent of the proposal writer: `bmc detect --classifier` with the same two
 * models on the same smears (its cell-types.json). The classifier is a small one trained here with
 * `bmc classify train` on real PBC single-cell images (one epoch: its accuracy does not matter,
 * only that its calls come through each format unchanged).
 */
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const MODEL = new URL('../../../packages/models/models/blood-smear/model.onnx', import.meta.url).pathname;
const DATA = new URL('../../../../shared/data/', import.meta.url).pathname;
const TXL = join(DATA, 'txl-pbc', 'images', 'train');
const PBC = join(DATA, 'pbc-cells');
const ready = existsSync(MODEL) && existsSync(TXL) && existsSync(PBC);
const STACK = /\n\s+at /;

function bmc(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BMC_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

type Box = [string, number, number, number, number];

function byName(ds: Dataset): Record<string, Box[]> {
  const out: Record<string, Box[]> = {};
  for (const im of ds.images)
    out[im.file.split('/').pop()!] = Array.from(
      im.labels,
      (l, k) => [ds.categories[l]!.name, ...Array.from(im.boxes.subarray(4 * k, 4 * k + 4))] as Box,
    );
  return out;
}

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

describe.skipIf(!ready)('bmc label propose --classifier', () => {
  it('writes each box with its cell type in COCO, VOC, YOLO, CVAT and Label Studio, as bmc detect --classifier calls it', async () => {
    const b = join(dir, 'batch');
    const r = await bmc([
      'label',
      'propose',
      '-m',
      MODEL,
      join(dir, 'smears'),
      '--out',
      b,
      '--classifier',
      cls,
      '--classifier-threshold',
      '0.4',
      '--ls-root',
      dir,
    ]);
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
    const ref: Record<string, Box[]> = {};
    for (const im of types) ref[im.file.split('/').pop()!] = im.cells.map((c) => [c.type, ...c.box] as Box);
    const all = Object.values(ref).flat();
    expect(all.length).toBeGreaterThan(10);
    // A one-epoch classifier still calls more than one type here: the labels are not all alike.
    expect(new Set(all.map((c) => c[0])).size).toBeGreaterThan(1);

    const read = {
      coco: await readCoco(join(b, 'coco.json')),
      voc: await readVoc(join(b, 'voc')),
      yolo: await readYolo(join(b, 'yolo')),
      cvat: await readCvat(join(b, 'cvat.xml')),
      labelstudio: await readLabelStudio(join(b, 'labelstudio.json'), {
        imageRoot: join(b, 'images'),
        from: 'predictions',
      }),
    };
    for (const [format, ds] of Object.entries(read)) {
      const got = byName(ds);
      expect(Object.keys(got).sort(), format).toEqual(Object.keys(ref).sort());
      const tol = format === 'voc' ? 0.51 : 0.02;
      for (const [name, boxes] of Object.entries(ref)) {
        expect(got[name]!.length, `${format} ${name}`).toBe(boxes.length);
        for (const want of boxes)
          expect(
            got[name]!.some(
              (g) =>
                g[0] === want[0] &&
                [1, 2, 3, 4].every((c) => Math.abs((g[c] as number) - (want[c] as number)) <= tol),
            ),
            `${format} ${name}: ${want.join(' ')}`,
          ).toBe(true);
      }
    }
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
    const r = await bmc([
      'label',
      'propose',
      '-m',
      MODEL,
      join(dir, 'smears'),
      '--out',
      out,
      '--classifier',
      MODEL,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${MODEL}: not a bmc cell classifier`);
    expect(r.stderr).not.toMatch(STACK);
    expect(existsSync(join(out, 'batch.json'))).toBe(false);
  }, 120_000);
});
