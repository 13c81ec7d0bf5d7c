import { existsSync, type Stats, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '@bmc/core';
import {
  countBoxes,
  type Dataset,
  findYoloSplits,
  formatReport,
  fsErrorText,
  type ImageCheckMode,
  mapCategories,
  readCoco,
  readVoc,
  readYolo,
  type ValidationPolicy,
  writeCoco,
  writeSmearDataset,
} from '@bmc/data';

export type DatasetFormat = 'coco' | 'voc' | 'yolo';

/**
 * VOC folders have `Annotations/`, YOLO ones a `data.yaml` or split folders with images
 * (`train|valid|test/images`, as Roboflow and Darknet write them), COCO is a `.json` file.
 */
export function detectFormat(path: string): DatasetFormat {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (e) {
    // A symlink loop is not "no such file".
    const why = fsErrorText(e);
    throw new InputError(`${path}: ${why === 'not found' ? 'no such file or folder' : why}`, path);
  }
  if (!st.isFile() && !st.isDirectory())
    throw new InputError(`${path}: not a regular file or folder (a FIFO, socket or device)`, path);
  if (st.isFile()) {
    if (path.endsWith('.json')) return 'coco';
    if (/\.ya?ml$/.test(path)) return 'yolo';
    throw new InputError(
      `${path}: cannot tell the dataset format (expected a COCO .json, a YOLO data.yaml or a VOC folder)`,
      path,
    );
  }
  if (existsSync(join(path, 'Annotations'))) return 'voc';
  if (existsSync(join(path, 'data.yaml')) || existsSync(join(path, 'data.yml'))) return 'yolo';
  if (findYoloSplits(path)) return 'yolo';
  throw new InputError(
    `${path}: neither a VOC folder (Annotations/) nor a YOLO folder (data.yaml, or train/valid/test ` +
      'folders with images: train/images, images/train, or images beside their label files)',
    path,
  );
}

export interface ReadDatasetOptions {
  format?: DatasetFormat;
  split?: string;
  policy?: ValidationPolicy;
  checkImages?: boolean;
  /** How far images are checked when they are: the header only or a full decode. */
  imageCheck?: ImageCheckMode;
  /** Read COCO images whose file_name lies outside the dataset folder. */
  allowOutsideRoot?: boolean;
  singleClass?: boolean;
}

/** Reads any supported dataset; the split selects VOC ImageSets, YOLO images/<split>, or is ignored for COCO. */
export async function readDataset(path: string, o: ReadDatasetOptions = {}): Promise<Dataset> {
  const format = o.format ?? detectFormat(path);
  const common = {
    policy: o.policy ?? 'lenient',
    checkImages: o.checkImages ?? false,
    ...(o.imageCheck ? { imageCheck: o.imageCheck } : {}),
  } as const;
  let ds: Dataset;
  if (format === 'voc') ds = await readVoc(path, { ...common, ...(o.split ? { split: o.split } : {}) });
  else if (format === 'yolo')
    ds = await readYolo(path, {
      policy: common.policy,
      // YOLO reads every image's size from its header anyway; a check decodes it fully.
      ...(o.checkImages && o.imageCheck ? { imageCheck: o.imageCheck } : {}),
      ...(o.split ? { split: o.split } : {}),
    });
  else ds = await readCoco(path, { ...common, ...(o.allowOutsideRoot ? { allowOutsideRoot: true } : {}) });
  warnOnce(ds.warnings);
  return o.singleClass ? mapCategories(ds, 'single') : ds;
}

const warned = new Set<string>();
/** A reader's assumptions (e.g. classes named by id), on stderr once per process: training reads three splits. */
function warnOnce(warnings: readonly string[] | undefined): void {
  for (const w of warnings ?? []) {
    if (warned.has(w)) continue;
    warned.add(w);
    process.stderr.write(`warning: ${w}\n`);
  }
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

/**
 * `bmc data check`: every annotation problem, and every image that is missing, not a regular
 * file, or does not decode: fully (every pixel, so a truncated JPEG is found) unless `fast`, which
 * reads the headers only.
 */
export async function dataCheck(
  path: string,
  o: ReadDatasetOptions & { fast?: boolean },
): Promise<{ ok: boolean; text: string }> {
  const mode: ImageCheckMode = o.fast ? 'header' : 'full';
  const ds = await readDataset(path, { ...o, checkImages: true, imageCheck: mode });
  const issues = ds.report.issues;
  const checked = mode === 'full' ? 'decoded fully' : 'headers only (--fast)';
  const text = issues.length
    ? `${issues.length} problem(s), fixed under the lenient policy:\n${formatReport(ds.report)}`
    : `no problems in ${ds.images.length} images (images: ${checked})`;
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
