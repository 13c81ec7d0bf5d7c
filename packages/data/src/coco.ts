import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { xywhToXyxy } from '@bmc/core';
import { type BoxCheckOptions, checkBox } from './box-check.js';
import type { Category, Dataset, DatasetImage } from './dataset.js';
import { DataError, lineColumn } from './errors.js';
import { fsErrorText, isInside, regularFileProblem } from './file-check.js';
import { checkImageFiles, type ImageCheckMode } from './image-check.js';
import { writeFileAtomic } from './image-io.js';
import { type ValidationPolicy, Validator } from './validation.js';

export interface ReadOptions extends BoxCheckOptions {
  readonly policy?: ValidationPolicy;
  /** Check each image file exists, decodes and matches the annotated size. Default true. */
  readonly checkImages?: boolean;
  /** How far `checkImages` decodes: the header only (default) or every pixel. */
  readonly imageCheck?: ImageCheckMode;
}

export interface CocoReadOptions extends ReadOptions {
  /** Folder that `file_name` is relative to. Default: the JSON file's folder. */
  readonly imageRoot?: string;
  /**
   * Read images whose `file_name` (absolute, or with `..`) lies outside the image root. Default
   * false: such an image is a problem (dropped under `lenient`), so an annotation file cannot make
   * a tool read arbitrary files.
   */
  readonly allowOutsideRoot?: boolean;
}

type Json = Record<string, unknown>;

/** Reads a COCO detection JSON (one file per split). Category and image ids need not be contiguous. */
export async function readCoco(file: string, opts: CocoReadOptions = {}): Promise<Dataset> {
  const text = await readText(file);
  return parseCoco(text, file, opts);
}

/** {@link readCoco} on already-loaded text; `file` is used for messages and the image root. */
export async function parseCoco(text: string, file: string, opts: CocoReadOptions = {}): Promise<Dataset> {
  const v: Validator = new Validator(opts.policy);
  const root = opts.imageRoot ?? dirname(file);
  if (text.trim() === '') v.fail(file, undefined, 'file is empty');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    v.fail(file, jsonLocation(text, e), `malformed JSON: ${(e as Error).message.replace(/ in JSON.*$/, '')}`);
  }
  if (!isObject(doc)) v.fail(file, undefined, 'top level is not a JSON object');
  const images = arrayField(v, file, doc, 'images');
  const annotations = arrayField(v, file, doc, 'annotations');
  const cats = arrayField(v, file, doc, 'categories');

  const categories: Category[] = [];
  const catIndex = new Map<number, number>();
  cats.forEach((c, i) => {
    const where = `categories[${i}]`;
    if (!isObject(c)) v.fail(file, where, 'category is not an object');
    if (typeof c.id !== 'number' || !Number.isInteger(c.id))
      v.fail(file, where, `category id ${show(c.id)} is not an integer`);
    if (typeof c.name !== 'string') v.fail(file, `category id ${c.id}`, 'category has no name');
    if (catIndex.has(c.id)) {
      v.fail(file, `category id ${c.id}`, `duplicate category id ${c.id}`);
    }
    catIndex.set(c.id, categories.length);
    categories.push({ id: c.id, name: c.name });
  });

  interface Draft {
    id: number;
    fileName: string;
    width: number;
    height: number;
    boxes: number[];
    labels: number[];
    iscrowd: number[];
    difficult: number[];
  }
  const drafts = new Map<number, Draft>();
  images.forEach((im, i) => {
    let where = `images[${i}]`;
    if (!isObject(im)) v.fail(file, where, 'image entry is not an object');
    if (typeof im.id !== 'number' || !Number.isInteger(im.id))
      v.fail(file, where, `image id ${show(im.id)} is not an integer`);
    where = `image id ${im.id}`;
    if (typeof im.file_name !== 'string' || im.file_name === '')
      v.fail(file, where, 'image has no file_name');
    for (const k of ['width', 'height'] as const) {
      const x = im[k];
      if (typeof x !== 'number' || !Number.isInteger(x) || x <= 0) {
        v.fail(file, where, `image ${k} ${show(x)} is not a positive integer`);
      }
    }
    if (drafts.has(im.id)) {
      v.problem(file, where, `duplicate image id ${im.id} (images[${i}])`, 'ignored');
      return;
    }
    drafts.set(im.id, {
      id: im.id,
      fileName: im.file_name as string,
      width: im.width as number,
      height: im.height as number,
      boxes: [],
      labels: [],
      iscrowd: [],
      difficult: [],
    });
  });

  const annIds = new Set<number>();
  annotations.forEach((a, i) => {
    let where = `annotations[${i}]`;
    if (!isObject(a)) v.fail(file, where, 'annotation is not an object');
    if (typeof a.id === 'number') {
      where = `annotation id ${a.id}`;
      if (annIds.has(a.id)) {
        v.problem(file, where, `duplicate annotation id ${a.id} (annotations[${i}])`, 'dropped-box');
        return;
      }
      annIds.add(a.id);
    } else if (a.id !== undefined) {
      v.problem(file, where, `annotation id ${show(a.id)} is not a number`, 'ignored');
    }
    const img = typeof a.image_id === 'number' ? drafts.get(a.image_id) : undefined;
    if (!img) {
      v.problem(file, where, `image_id ${show(a.image_id)} is not in images`, 'dropped-box');
      return;
    }
    const label = typeof a.category_id === 'number' ? catIndex.get(a.category_id) : undefined;
    if (label === undefined) {
      v.problem(file, where, `unknown category_id ${show(a.category_id)}`, 'dropped-box');
      return;
    }
    const bb = a.bbox;
    if (!Array.isArray(bb) || bb.length !== 4 || !bb.every((x) => typeof x === 'number' || x === null)) {
      v.problem(file, where, `bbox ${show(bb)} is not [x, y, w, h]`, 'dropped-box');
      return;
    }
    // JSON has no NaN: writers that emit NaN produce null, which JSON.parse keeps.
    const xyxy = xywhToXyxy(bb.map((t) => (t === null ? Number.NaN : (t as number))));
    const box = checkBox(
      v,
      file,
      where,
      [xyxy[0]!, xyxy[1]!, xyxy[2]!, xyxy[3]!],
      img.width,
      img.height,
      opts,
    );
    if (!box) return;
    img.boxes.push(...box);
    img.labels.push(label);
    img.iscrowd.push(a.iscrowd === 1 || a.iscrowd === true ? 1 : 0);
    // Not COCO, but our writer keeps VOC's flag this way so conversions lose nothing.
    img.difficult.push(a.difficult === 1 || a.difficult === true ? 1 : 0);
  });

  const inRoot = [...drafts.values()].filter((d) => {
    const path = resolve(root, d.fileName);
    if (opts.allowOutsideRoot || isInside(root, path)) return true;
    v.problem(
      file,
      `image id ${d.id}`,
      `file_name "${d.fileName}" resolves to ${path}, outside the dataset folder ${resolve(root)} (allow it with --allow-outside-root / allowOutsideRoot)`,
      'dropped-image',
    );
    return false;
  });
  let out: DatasetImage[] = inRoot.map((d) => ({
    id: d.id,
    file: isAbsolute(d.fileName) ? d.fileName : resolve(root, d.fileName),
    width: d.width,
    height: d.height,
    boxes: Float32Array.from(d.boxes),
    labels: Int32Array.from(d.labels),
    iscrowd: Uint8Array.from(d.iscrowd),
    difficult: Uint8Array.from(d.difficult),
    source: file,
  }));
  if (opts.checkImages ?? true) {
    out = await checkImageFiles(out, v, (img) => ({ file, where: `image id ${img.id}` }), opts.imageCheck);
  }
  return { categories, images: out, report: v.report() };
}

export interface CocoWriteOptions {
  /** Write `file_name` relative to this folder. Default: the output file's folder. */
  readonly imageRoot?: string;
}

/** The COCO JSON object for a dataset (boxes written as `[x, y, w, h]`). */
export function toCoco(dataset: Dataset, imageRoot: string): Json {
  const images: Json[] = [];
  const annotations: Json[] = [];
  let annId = 1;
  for (const img of dataset.images) {
    images.push({
      id: img.id,
      file_name: relative(imageRoot, img.file).split('\\').join('/'),
      width: img.width,
      height: img.height,
    });
    for (let k = 0; k < img.labels.length; k++) {
      // Not core's xyxyToXywh: it rounds w and h to float32, and x + w would then miss x2 on
      // reading back. A double difference of two float32 values is exact.
      const [x1, y1, x2, y2] = img.boxes.subarray(4 * k, 4 * k + 4);
      const w = x2! - x1!;
      const h = y2! - y1!;
      annotations.push({
        id: annId++,
        image_id: img.id,
        category_id: dataset.categories[img.labels[k]!]!.id,
        bbox: [x1, y1, w, h],
        area: w * h,
        iscrowd: img.iscrowd[k] ?? 0,
        ...(img.difficult[k] ? { difficult: 1 } : {}),
        // Proposals: the model's score, which COCO tools keep as an extra field.
        ...(img.scores ? { score: img.scores[k] } : {}),
      });
    }
  }
  return {
    images,
    annotations,
    categories: dataset.categories.map((c) => ({ id: c.id, name: c.name, supercategory: 'cell' })),
  };
}

/** Writes a dataset as COCO JSON (temp file + rename). */
export async function writeCoco(dataset: Dataset, file: string, opts: CocoWriteOptions = {}): Promise<void> {
  const json = toCoco(dataset, opts.imageRoot ?? dirname(resolve(file)));
  await writeFileAtomic(file, JSON.stringify(json));
}

export async function readText(file: string): Promise<string> {
  // Checked before opening: reading a FIFO blocks until a writer appears.
  const bad = await regularFileProblem(file);
  if (bad)
    throw new DataError(file, undefined, bad === 'not found' ? 'file not found' : `cannot read file: ${bad}`);
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new DataError(file, undefined, `cannot read file: ${fsErrorText(e)}`);
  }
}

function arrayField(v: Validator, file: string, doc: Json, key: string): unknown[] {
  const x = doc[key];
  if (!Array.isArray(x))
    v.fail(file, undefined, `"${key}" is ${x === undefined ? 'missing' : 'not an array'}`);
  return x;
}

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function show(x: unknown): string {
  return x === undefined ? 'missing' : JSON.stringify(x);
}

/** V8 reports `... at position N` (and newer V8 `line L column C`); turn either into a location. */
function jsonLocation(text: string, e: unknown): string | undefined {
  const msg = (e as Error).message;
  const lc = /line (\d+) column (\d+)/.exec(msg);
  if (lc) return `line ${lc[1]}, column ${lc[2]}`;
  const pos = /position (\d+)/.exec(msg);
  if (pos) {
    const { line, column } = lineColumn(text, Number(pos[1]));
    return `line ${line}, column ${column}`;
  }
  if (/end of JSON input/.test(msg)) {
    const { line, column } = lineColumn(text, text.length);
    return `line ${line}, column ${column}`;
  }
  return undefined;
}
