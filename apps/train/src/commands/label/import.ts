import { existsSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '@bmc/core';
import {
  type Category,
  type Dataset,
  type DatasetImage,
  formatReport,
  linkImage,
  readCoco,
  readCvat,
  readLabelStudio,
  writeCoco,
} from '@bmc/data';
import { detectFormat, readDataset } from '../data.js';
import { readBatchManifest } from './batch.js';
import { DATASET_FILE, type LedgerEntry, readLedger, writeLedger } from './ledger.js';

export type CorrectionFormat = 'cvat' | 'labelstudio' | 'coco' | 'voc' | 'yolo';

export interface ImportOptions {
  /** The corrected file (CVAT XML, Label Studio export JSON, COCO JSON) or folder (VOC, YOLO). */
  input: string;
  /** The growing dataset folder (dataset.json, ledger.json, images/). */
  into: string;
  format?: CorrectionFormat;
  /** Folder the images of a CVAT / Label Studio file are found in. Default: `images/` beside it. */
  images?: string;
  batch?: string;
  round?: number;
  /** Import although validation fixed something (the fixes are applied and listed). */
  acceptFixes?: boolean;
  /** Overwrite images already labelled differently (each one is listed). */
  replace?: boolean;
}

export interface ImportResult {
  batch: string;
  round: number;
  added: string[];
  unchanged: string[];
  replaced: string[];
  text: string;
}

/** A CVAT XML is `.xml`; a `.json` is Label Studio when it is an array of tasks, else COCO. */
export async function detectCorrectionFormat(path: string): Promise<CorrectionFormat> {
  if (/\.xml$/i.test(path)) return 'cvat';
  if (/\.json$/i.test(path)) {
    const { readFile } = await import('node:fs/promises');
    const head = (await readFile(path, 'utf8').catch(() => '')).trimStart();
    return head.startsWith('[') ? 'labelstudio' : 'coco';
  }
  return detectFormat(path);
}

/** Reads corrections with the checks `bmc data check` makes (every image decoded fully). */
async function readCorrections(o: ImportOptions, format: CorrectionFormat): Promise<Dataset> {
  const common = { policy: 'lenient', checkImages: true, imageCheck: 'full' } as const;
  const images = o.images ?? join(dirname(resolve(o.input)), 'images');
  if (format === 'cvat') return readCvat(o.input, { ...common, imageRoot: images });
  if (format === 'labelstudio') {
    const root = o.images ?? (existsSync(images) ? images : dirname(resolve(o.input)));
    return readLabelStudio(o.input, { ...common, imageRoot: root });
  }
  return readDataset(o.input, { format, ...common });
}

/** Boxes (to 1/100 px) and class names, sorted: equal for the same labels in any format or order. */
export function labelDigest(ds: Dataset, im: DatasetImage): string {
  const items = Array.from(im.labels, (l, k) => {
    const b = Array.from(im.boxes.subarray(4 * k, 4 * k + 4), (x) => (Math.round(x * 100) / 100).toFixed(2));
    return `${ds.categories[l]!.name}:${b.join(',')}`;
  }).sort();
  return `${im.width}x${im.height}|${items.join(';')}`;
}

/**
 * `bmc label import`: validates corrected labels and merges them into the dataset folder. Nothing
 * is written when validation found problems (unless `acceptFixes`) or an image is already labelled
 * differently (unless `replace`); importing the same labels again changes nothing.
 */
export async function importCorrections(o: ImportOptions): Promise<ImportResult> {
  const format = o.format ?? (await detectCorrectionFormat(o.input));
  const corrected = await readCorrections(o, format);
  if (corrected.report.issues.length && !o.acceptFixes) {
    throw new InputError(
      `${o.input}: ${corrected.report.issues.length} problem(s); nothing imported. Fix them in the annotation tool, ` +
        `or pass --accept-fixes to import with these fixes applied:\n${formatReport(corrected.report)}`,
      o.input,
    );
  }
  if (corrected.images.length === 0)
    throw new InputError(`${o.input}: no labelled images to import`, o.input);

  const into = resolve(o.into);
  await mkdir(into, { recursive: true });
  const ledger = await readLedger(into);
  const datasetFile = join(into, DATASET_FILE);
  const existing: Dataset = existsSync(datasetFile)
    ? await readCoco(datasetFile, { checkImages: false, policy: 'strict' })
    : { categories: [], images: [], report: { issues: [] } };

  const batchDir = statSync(o.input).isDirectory() ? resolve(o.input) : dirname(resolve(o.input));
  // A VOC / YOLO folder inside a batch folder (batch-01/voc/) belongs to that batch.
  const manifest = (await readBatchManifest(batchDir)) ?? (await readBatchManifest(dirname(batchDir)));
  const batch = o.batch ?? manifest?.name ?? basename(batchDir);
  const known = ledger.rounds.find((r) => r.batches.includes(batch));
  const round =
    o.round ??
    known?.round ??
    (ledger.rounds.length ? Math.max(...ledger.rounds.map((r) => r.round)) + 1 : 0);

  // Categories by name: existing ones keep their ids, new names are appended.
  const categories: Category[] = [...existing.categories];
  const byName = new Map(categories.map((c, i) => [c.name, i]));
  for (const c of corrected.categories) {
    if (!byName.has(c.name)) {
      byName.set(c.name, categories.length);
      categories.push({ id: Math.max(0, ...categories.map((x) => x.id)) + 1, name: c.name });
    }
  }
  const merged: Dataset = { categories, images: existing.images, report: { issues: [] } };
  const images = new Map(existing.images.map((im) => [basename(im.file), im]));

  const added: string[] = [];
  const unchanged: string[] = [];
  const replaced: string[] = [];
  const conflicts: string[] = [];
  const entries: [string, LedgerEntry, DatasetImage][] = [];
  const now = new Date().toISOString();
  for (const im of corrected.images) {
    const name = basename(im.file);
    const digest = labelDigest(corrected, im);
    const prior = ledger.images[name];
    const remapped: DatasetImage = {
      ...im,
      file: join(into, 'images', name),
      labels: Int32Array.from(im.labels, (l) => byName.get(corrected.categories[l]!.name)!),
    };
    const entry: LedgerEntry = {
      batch,
      round,
      source: resolve(o.input),
      importedAt: now,
      digest,
      boxes: im.labels.length,
    };
    if (prior && prior.digest === digest) {
      unchanged.push(name);
      continue;
    }
    if (prior) {
      if (!o.replace) {
        conflicts.push(
          `${name}: labelled in batch ${prior.batch} (round ${prior.round}) with ${prior.boxes} box(es); ` +
            `${o.input} has ${im.labels.length} box(es) that differ`,
        );
        continue;
      }
      replaced.push(name);
    } else {
      added.push(name);
    }
    entries.push([name, entry, { ...remapped, file: im.file }]);
  }
  if (conflicts.length) {
    throw new InputError(
      `${o.input}: ${conflicts.length} image(s) already labelled differently; nothing imported ` +
        `(pass --replace to overwrite them with these labels):\n${conflicts.join('\n')}`,
      o.input,
    );
  }

  for (const [name, entry, im] of entries) {
    await linkImage(im.file, join(into, 'images', name));
    images.set(name, { ...im, file: join(into, 'images', name) });
    ledger.images[name] = entry;
  }
  if (entries.length) {
    const list = [...images.values()].map((im, i) => ({ ...im, id: i + 1 }));
    await writeCoco({ ...merged, images: list }, join(into, DATASET_FILE));
    const r = ledger.rounds.find((x) => x.round === round);
    if (r) {
      if (!r.batches.includes(batch)) r.batches.push(batch);
    } else {
      ledger.rounds.push({ round, batches: [batch] });
      ledger.rounds.sort((a, b) => a.round - b.round);
    }
    await writeLedger(into, ledger);
  }
  const fixes = corrected.report.issues.length
    ? `\napplied ${corrected.report.issues.length} fix(es) (--accept-fixes):\n${formatReport(corrected.report)}`
    : '';
  const text =
    `${o.input} -> ${join(into, DATASET_FILE)} (batch ${batch}, round ${round}): ` +
    `${added.length} added, ${replaced.length} replaced, ${unchanged.length} unchanged` +
    (replaced.length ? `\nreplaced: ${replaced.join(', ')}` : '') +
    fixes;
  return { batch, round, added, unchanged, replaced, text };
}
