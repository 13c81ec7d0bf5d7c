import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { checkBox } from './box-check.js';
import { type ReadOptions, readText } from './coco.js';
import type { Category, Dataset, DatasetImage } from './dataset.js';
import { DataError, lineColumn } from './errors.js';
import { mapLimit, probeImage } from './image-check.js';
import { writeFileAtomic } from './image-io.js';
import { linkImage, uniqueStems } from './image-links.js';
import { Validator } from './validation.js';

export interface YoloReadOptions extends Omit<ReadOptions, 'checkImages'> {
  /** Split key in data.yaml (`train`, `val`, `test`). Default: every split the yaml lists, in that order. */
  readonly split?: string;
}

export interface YoloConfig {
  /** Absolute image folder (or `.txt` image list) per split. */
  readonly splits: Record<string, string>;
  readonly names: string[];
  /**
   * Where to look when a split's folder does not exist: Roboflow writes `train: ../train/images`
   * into a data.yaml that sits next to `train/`; Ultralytics then drops the `../`, and so do we.
   */
  readonly fallbacks?: Record<string, string>;
}

const IMAGE_EXT = new Set(['.jpg', '.jpeg', '.png', '.tif', '.tiff', '.webp', '.bmp']);

/** Parses `data.yaml` (Ultralytics layout: `path`, `train`/`val`/`test`, `names` as list or map, `nc`). */
export function parseDataYaml(text: string, file: string): YoloConfig {
  const v: Validator = new Validator('strict');
  if (text.trim() === '') v.fail(file, undefined, 'file is empty');
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const { line, column } = lineColumn(text, e.pos[0]);
    v.fail(file, `line ${line}, column ${column}`, `malformed YAML: ${e.message.split('\n')[0]}`);
  }
  const y = doc.toJS() as Record<string, unknown> | null;
  if (!y || typeof y !== 'object' || Array.isArray(y)) v.fail(file, undefined, 'top level is not a mapping');
  const at = (key: string) => {
    const node = doc.get(key, true) as { range?: [number, number] } | undefined;
    if (!node?.range) return undefined;
    return `line ${text.slice(0, node.range[0]).split('\n').length} ("${key}")`;
  };
  let names: string[];
  if (Array.isArray(y.names)) {
    names = y.names.map(String);
  } else if (y.names && typeof y.names === 'object') {
    const entries = Object.entries(y.names as Record<string, unknown>);
    names = [];
    for (const [k, n] of entries) {
      const i = Number(k);
      if (!Number.isInteger(i) || i < 0 || i >= entries.length) {
        v.fail(file, at('names'), `class id ${k} is not in 0..${entries.length - 1}`);
      }
      names[i] = String(n);
    }
  } else {
    v.fail(file, at('names'), `"names" is ${y.names === undefined ? 'missing' : 'not a list or mapping'}`);
  }
  if (y.nc !== undefined && y.nc !== names.length) {
    v.fail(file, at('nc'), `nc ${JSON.stringify(y.nc)} does not match the ${names.length} names`);
  }
  const base = resolve(dirname(file), typeof y.path === 'string' ? y.path : '.');
  const splits: Record<string, string> = {};
  const fallbacks: Record<string, string> = {};
  for (const k of ['train', 'val', 'test']) {
    const p = y[k];
    if (p === undefined || p === null) continue;
    if (typeof p !== 'string') v.fail(file, at(k), `"${k}" is not a folder or image-list path`);
    splits[k] = resolve(base, p);
    if (typeof y.path !== 'string' && p.startsWith('../')) fallbacks[k] = resolve(dirname(file), p.slice(3));
  }
  if (Object.keys(splits).length === 0) v.fail(file, undefined, 'no train/val/test folder listed');
  return { splits, names, ...(Object.keys(fallbacks).length ? { fallbacks } : {}) };
}

/** Split folders of the Darknet / Roboflow layout, and the split each stands for (`valid` is validation). */
const SPLIT_FOLDERS: ReadonlyArray<readonly [folder: string, split: string]> = [
  ['train', 'train'],
  ['valid', 'val'],
  ['val', 'val'],
  ['test', 'test'],
];

/** Files holding one class name per line, looked for (after data.yaml) in this order. */
export const CLASS_NAME_FILES = ['classes.txt', 'obj.names'] as const;

const isDirSync = (p: string) => existsSync(p) && statSync(p).isDirectory();
const hasImages = (dir: string) =>
  isDirSync(dir) && readdirSync(dir).some((n) => IMAGE_EXT.has(extname(n).toLowerCase()));

/**
 * The image folder of each split of a YOLO dataset laid out without a data.yaml: the Roboflow /
 * Darknet layout `<root>/{train,valid,test}/images` (labels in `.../labels`), the same with images
 * and label files side by side in `<root>/{train,valid,test}`, or Ultralytics' `<root>/images/{train,val,test}`.
 * `valid` (or `val`) is the `val` split. Undefined when `root` has none of these.
 */
export function findYoloSplits(root: string): Record<string, string> | undefined {
  const splits: Record<string, string> = {};
  for (const [folder, split] of SPLIT_FOLDERS) {
    if (splits[split]) continue;
    const candidates = [join(root, folder, 'images'), join(root, 'images', folder), join(root, folder)];
    const dir = candidates.find(hasImages);
    if (dir) splits[split] = dir;
  }
  return Object.keys(splits).length ? splits : undefined;
}

/** Class names from a `classes.txt` / `obj.names` file: one per line, blank lines ignored. */
export function parseClassNames(text: string, file: string): string[] {
  const names = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  if (names.length === 0) throw new DataError(file, undefined, 'no class names in the file (one per line)');
  const seen = new Set<string>();
  for (const [i, n] of names.entries()) {
    if (seen.has(n)) throw new DataError(file, `line ${i + 1}`, `class name "${n}" appears twice`);
    seen.add(n);
  }
  return names;
}

/**
 * Class names of a YOLO folder without data.yaml: the first of `classes.txt`, `obj.names` in the
 * root, then a `classes.txt` next to a split's labels (where labelImg writes it). Undefined when
 * there is none.
 */
export async function readClassNames(
  root: string,
  splits: Record<string, string>,
): Promise<{ names: string[]; file: string } | undefined> {
  const candidates = [
    ...CLASS_NAME_FILES.map((n) => join(root, n)),
    ...Object.values(splits).map((dir) => join(dirname(labelPathFor(join(dir, 'x.jpg'))), 'classes.txt')),
  ];
  for (const file of candidates) {
    if (!existsSync(file)) continue;
    return { names: parseClassNames(await readText(file), file), file };
  }
  return undefined;
}

/**
 * An Ultralytics image list: a split given as a `.txt` file holds one image path per line (relative
 * paths resolve against the list's folder, `#` starts a comment). Lists select and combine images
 * from several folders without copying them, e.g. a split by source written by a script.
 */
async function readImageList(list: string, yamlFile: string, split: string): Promise<string[]> {
  let text: string;
  try {
    text = await readText(list);
  } catch {
    throw new DataError(yamlFile, `"${split}"`, `image list not found: ${list}`);
  }
  const files: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    if (!IMAGE_EXT.has(extname(line).toLowerCase()))
      throw new DataError(list, `line ${i + 1}`, `not an image path: "${line}"`);
    files.push(resolve(dirname(list), line));
  });
  return files;
}

/** `.../images/x/a.jpg` -> `.../labels/x/a.txt` (the last `images` path component, as Ultralytics does). */
export function labelPathFor(image: string): string {
  const parts = image.split(sep);
  const i = parts.lastIndexOf('images');
  if (i >= 0) parts[i] = 'labels';
  const p = parts.join(sep);
  return `${p.slice(0, p.length - extname(p).length)}.txt`;
}

/**
 * Reads a YOLO dataset from its `data.yaml` (or the folder holding it). Labels are
 * `class cx cy w h` normalised to the image; image sizes come from the image headers, so an
 * unreadable image is found here. An image without a label file has no boxes (YOLO's
 * convention for background images).
 */
export async function readYolo(dataYamlOrRoot: string, opts: YoloReadOptions = {}): Promise<Dataset> {
  const cfg = await yoloConfig(dataYamlOrRoot);
  const yamlFile = cfg.source;
  const v: Validator = new Validator(opts.policy);
  // Roboflow calls the validation split `valid`.
  const wanted = opts.split === 'valid' && !cfg.splits.valid ? 'val' : opts.split;
  const splitNames = wanted ? [wanted] : Object.keys(cfg.splits);
  const files: string[] = [];
  for (const s of splitNames) {
    let dir = cfg.splits[s];
    if (!dir)
      v.fail(yamlFile, undefined, `split "${s}" is not listed (have: ${Object.keys(cfg.splits).join(', ')})`);
    const fallback = cfg.fallbacks?.[s];
    if (fallback && !existsSync(dir) && existsSync(fallback)) dir = fallback;
    if (extname(dir).toLowerCase() === '.txt') {
      files.push(...(await readImageList(dir, yamlFile, s)));
      continue;
    }
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      throw new DataError(yamlFile, `"${s}"`, `image folder not found: ${dir}`);
    }
    const images = names.filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort();
    files.push(...images.map((n) => join(dir, n)));
    await reportOrphanLabels(dir, images, v);
  }

  const loaded = await mapLimit(files, 8, async (file) => {
    const size = await probeImage(file, opts.imageCheck).catch((e: DataError) => e);
    const labelFile = labelPathFor(file);
    const text = await readText(labelFile).catch(() => undefined);
    return { file, size, labelFile, text };
  });
  const warnings: string[] = [];
  let names = cfg.names;
  if (!names) {
    // No names anywhere: name the classes by id, as many as the labels of every split use (so
    // that all splits agree on the classes), and say so.
    const max = await maxClassId(Object.values(cfg.splits));
    names = Array.from({ length: max + 1 }, (_, i) => `class_${i}`);
    warnings.push(
      `${cfg.source}: no data.yaml, ${CLASS_NAME_FILES.join(' or ')} found, so the ${names.length} class(es) the labels use ` +
        `are named by id (${names.length ? `${names[0]}..${names[names.length - 1]}` : 'none'}); ` +
        `put a ${CLASS_NAME_FILES[0]} with one name per line in ${cfg.root} to name them`,
    );
  }
  const categories: Category[] = names.map((name, i) => ({ id: i, name }));
  const namesFrom = cfg.namesFrom;

  const images: DatasetImage[] = [];
  for (const { file, size, labelFile, text } of loaded) {
    if (size instanceof DataError) {
      v.problem(file, undefined, size.problem, 'dropped-image');
      continue;
    }
    const { width, height } = size;
    const boxes: number[] = [];
    const labels: number[] = [];
    const lines = text === undefined ? [] : text.split(/\r?\n/);
    lines.forEach((line, li) => {
      if (line.trim() === '') return;
      const where = `line ${li + 1}`;
      const f = line.trim().split(/\s+/);
      if (f.length !== 5) {
        v.problem(
          labelFile,
          where,
          `expected "class cx cy w h" (5 fields), got ${f.length}: "${line.trim()}"`,
          'dropped-box',
        );
        return;
      }
      const cls = Number(f[0]);
      if (!Number.isInteger(cls) || cls < 0 || cls >= names.length) {
        v.problem(
          labelFile,
          where,
          `unknown class id "${f[0]}" (${namesFrom ?? 'the labels'} ${namesFrom ? 'has' : 'use'} ${names.length} class(es))`,
          'dropped-box',
        );
        return;
      }
      const [cx, cy, w, h] = f
        .slice(1)
        .map((t) => (/^[-+0-9.eE]+$/.test(t) ? Number(t) : Number.NaN)) as number[];
      const box = checkBox(
        v,
        labelFile,
        where,
        [(cx! - w! / 2) * width, (cy! - h! / 2) * height, (cx! + w! / 2) * width, (cy! + h! / 2) * height],
        width,
        height,
        opts,
      );
      if (!box) return;
      boxes.push(...box);
      labels.push(cls);
    });
    images.push({
      id: images.length + 1,
      file,
      width,
      height,
      boxes: Float32Array.from(boxes),
      labels: Int32Array.from(labels),
      iscrowd: new Uint8Array(labels.length),
      difficult: new Uint8Array(labels.length),
      source: labelFile,
    });
  }
  return { categories, images, report: v.report(), ...(warnings.length ? { warnings } : {}) };
}

/** The largest class id in the label files of these image folders (-1 when there is none). */
async function maxClassId(imageDirs: string[]): Promise<number> {
  let max = -1;
  for (const dir of imageDirs) {
    const labelDir = dirname(labelPathFor(join(dir, 'x.jpg')));
    const names = await readdir(labelDir).catch(() => [] as string[]);
    const texts = await mapLimit(
      names.filter((n) => n.endsWith('.txt') && n !== 'classes.txt'),
      8,
      (n) => readText(join(labelDir, n)).catch(() => ''),
    );
    for (const text of texts)
      for (const line of text.split(/\r?\n/)) {
        const id = Number(line.trim().split(/\s+/)[0]);
        // Malformed lines are reported when the labels are read; an absurd id would name absurdly many classes.
        if (line.trim() !== '' && Number.isInteger(id) && id >= 0 && id < 10_000) max = Math.max(max, id);
      }
  }
  return max;
}

interface ResolvedYolo extends Omit<YoloConfig, 'names'> {
  /** The file (data.yaml) or folder messages about the layout name. */
  source: string;
  root: string;
  /** Undefined: no names anywhere (classes are then named by id). */
  names?: string[];
  /** Where the names came from (`data.yaml`, `classes.txt`, `obj.names`). */
  namesFrom?: string;
}

/** A data.yaml (given, or in the folder), else the folder layout with names from a names file. */
async function yoloConfig(dataYamlOrRoot: string): Promise<ResolvedYolo> {
  if (!(await isDir(dataYamlOrRoot))) {
    const cfg = parseDataYaml(await readText(dataYamlOrRoot), dataYamlOrRoot);
    return {
      ...cfg,
      source: dataYamlOrRoot,
      root: dirname(dataYamlOrRoot),
      namesFrom: basename(dataYamlOrRoot),
    };
  }
  const root = dataYamlOrRoot;
  for (const y of ['data.yaml', 'data.yml']) {
    const file = join(root, y);
    if (existsSync(file))
      return { ...parseDataYaml(await readText(file), file), source: file, root, namesFrom: y };
  }
  const splits = findYoloSplits(root);
  if (!splits)
    throw new DataError(
      root,
      undefined,
      'not a YOLO dataset: no data.yaml, and no train/valid/test folders with images ' +
        '(train/images, images/train or images beside their label files)',
    );
  const found = await readClassNames(root, splits);
  return {
    splits,
    source: root,
    root,
    ...(found ? { names: found.names, namesFrom: basename(found.file) } : {}),
  };
}

/** Label files with no image are usually a renamed or deleted image: worth a line in the report. */
async function reportOrphanLabels(imageDir: string, images: string[], v: Validator): Promise<void> {
  const labelDir = dirname(labelPathFor(join(imageDir, 'x.jpg')));
  let names: string[];
  try {
    names = await readdir(labelDir);
  } catch {
    return;
  }
  const stems = new Set(images.map((n) => basename(n, extname(n))));
  for (const n of names.sort()) {
    // labelImg writes the class list next to the labels; it is not an annotation.
    if (!n.endsWith('.txt') || n === 'classes.txt') continue;
    if (!stems.has(n.slice(0, -4))) {
      v.problem(join(labelDir, n), undefined, 'label file has no matching image', 'ignored');
    }
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export interface YoloWriteOptions {
  /** Link (or copy) each image into `images/`, so the folder is a complete YOLO dataset. Default true. */
  readonly linkImages?: boolean;
}

/**
 * Writes an Ultralytics-layout YOLO folder: `data.yaml` (names, `train: images`), `images/` (linked
 * images) and `labels/<stem>.txt` with `class cx cy w h` normalised to the image (6 decimals: a
 * millionth of the side, far below a pixel). An image without boxes gets an empty label file, YOLO's
 * "no objects here" (a missing file would read the same but looks like a forgotten image).
 * Scores are not written: YOLO label files have five fields, and readers reject a sixth.
 */
export async function writeYolo(dataset: Dataset, root: string, opts: YoloWriteOptions = {}): Promise<void> {
  const stems = uniqueStems(dataset.images, 'YOLO');
  await mkdir(join(root, 'labels'), { recursive: true });
  const f = (x: number) => x.toFixed(6);
  for (let i = 0; i < dataset.images.length; i++) {
    const im = dataset.images[i]!;
    if (opts.linkImages ?? true) await linkImage(im.file, join(root, 'images', basename(im.file)));
    const lines = Array.from(im.labels, (l, k) => {
      const [x1, y1, x2, y2] = im.boxes.subarray(4 * k, 4 * k + 4);
      return `${l} ${f((x1! + x2!) / 2 / im.width)} ${f((y1! + y2!) / 2 / im.height)} ${f((x2! - x1!) / im.width)} ${f((y2! - y1!) / im.height)}\n`;
    });
    await writeFileAtomic(join(root, 'labels', `${stems[i]}.txt`), lines.join(''));
  }
  const yaml = stringify({ path: '.', train: 'images', names: dataset.categories.map((c) => c.name) });
  await writeFileAtomic(join(root, 'data.yaml'), yaml);
  await writeFileAtomic(join(root, 'classes.txt'), dataset.categories.map((c) => `${c.name}\n`).join(''));
}
