import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '@bmc/core';
import {
  countBoxes,
  type Dataset,
  formatReport,
  mapCategories,
  readCoco,
  readVoc,
  readYolo,
  type ValidationPolicy,
  writeCoco,
  writeSmearDataset,
} from '@bmc/data';

export type DatasetFormat = 'coco' | 'voc' | 'yolo';

/** VOC folders have `Annotations/`, YOLO ones a `data.yaml`, COCO is a `.json` file. */
export function detectFormat(path: string): DatasetFormat {
  if (!existsSync(path)) throw new InputError(`${path}: no such file or folder`, path);
  if (statSync(path).isFile()) {
    if (path.endsWith('.json')) return 'coco';
    if (/\.ya?ml$/.test(path)) return 'yolo';
    throw new InputError(
      `${path}: cannot tell the dataset format (expected a COCO .json, a YOLO data.yaml or a VOC folder)`,
      path,
    );
  }
  if (existsSync(join(path, 'Annotations'))) return 'voc';
  if (existsSync(join(path, 'data.yaml')) || existsSync(join(path, 'data.yml'))) return 'yolo';
  throw new InputError(
    `${path}: neither a VOC folder (Annotations/) nor a YOLO folder (data.yaml); pass --format`,
    path,
  );
}

export interface ReadDatasetOptions {
  format?: DatasetFormat;
  split?: string;
  policy?: ValidationPolicy;
  checkImages?: boolean;
  singleClass?: boolean;
}

/** Reads any supported dataset; the split selects VOC ImageSets, YOLO images/<split>, or is ignored for COCO. */
export async function readDataset(path: string, o: ReadDatasetOptions = {}): Promise<Dataset> {
  const format = o.format ?? detectFormat(path);
  const common = { policy: o.policy ?? 'lenient', checkImages: o.checkImages ?? false } as const;
  let ds: Dataset;
  if (format === 'voc') ds = await readVoc(path, { ...common, ...(o.split ? { split: o.split } : {}) });
  else if (format === 'yolo')
    ds = await readYolo(path, { policy: common.policy, ...(o.split ? { split: o.split } : {}) });
  else ds = await readCoco(path, common);
  return o.singleClass ? mapCategories(ds, 'single') : ds;
}

export function formatStats(ds: Dataset, label: string): string {
  const { total, perCategory } = countBoxes(ds);
  const sizes = new Map<string, number>();
  for (const im of ds.images)
    sizes.set(`${im.width}x${im.height}`, (sizes.get(`${im.width}x${im.height}`) ?? 0) + 1);
  let minSide = Number.POSITIVE_INFINITY;
  let maxSide = 0;
  for (const im of ds.images) {
    for (let k = 0; k < im.labels.length; k++) {
      const w = im.boxes[4 * k + 2]! - im.boxes[4 * k]!;
      const h = im.boxes[4 * k + 3]! - im.boxes[4 * k + 1]!;
      minSide = Math.min(minSide, w, h);
      maxSide = Math.max(maxSide, w, h);
    }
  }
  return [
    `${label}: ${ds.images.length} images, ${total} boxes`,
    ...Object.entries(perCategory).map(([k, v]) => `  ${k}: ${v}`),
    `  image sizes: ${[...sizes].map(([k, v]) => `${k} (${v})`).join(', ')}`,
    total ? `  box side: ${minSide.toFixed(1)} .. ${maxSide.toFixed(1)} px` : '  no boxes',
  ].join('\n');
}

export async function dataCheck(path: string, o: ReadDatasetOptions): Promise<{ ok: boolean; text: string }> {
  const ds = await readDataset(path, { ...o, checkImages: true });
  const issues = ds.report.issues;
  const text = issues.length
    ? `${issues.length} problem(s), fixed under the lenient policy:\n${formatReport(ds.report)}`
    : `no problems in ${ds.images.length} images`;
  return { ok: issues.length === 0, text };
}

export async function dataConvert(path: string, out: string, o: ReadDatasetOptions): Promise<string> {
  const ds = await readDataset(path, o);
  await writeCoco(ds, out);
  return `wrote ${out}: ${ds.images.length} images, ${countBoxes(ds).total} boxes`;
}

export async function dataSynth(
  out: string,
  o: {
    train: number;
    val: number;
    test: number;
    seed: number;
    size: number;
    width?: number;
    height?: number;
    categories: 'cell' | 'type';
  },
): Promise<string> {
  const splits = await writeSmearDataset(out, {
    seed: o.seed,
    splits: { train: o.train, val: o.val, test: o.test },
    width: o.width ?? o.size,
    height: o.height ?? o.size,
    categories: o.categories,
  });
  return Object.entries(splits)
    .map(([k, ds]) => `${join(out, `${k}.json`)}: ${ds.images.length} images, ${countBoxes(ds).total} cells`)
    .join('\n');
}
