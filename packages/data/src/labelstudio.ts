import { basename, dirname, join } from 'node:path';
import { checkBox } from './box-check.js';
import { type ReadOptions, readText } from './coco.js';
import type { Category, Dataset, DatasetImage } from './dataset.js';
import type { DataError } from './errors.js';
import { checkImageFiles } from './image-check.js';
import { imageSize, writeFileAtomic } from './image-io.js';
import { Validator } from './validation.js';

/**
 * Label Studio's JSON tasks (https://labelstud.io/guide/predictions, /guide/export): an array of
 * `{ data: { image }, predictions?: [...], annotations?: [...] }`, each prediction or annotation a
 * `result` list of `rectanglelabels` regions whose `value.{x, y, width, height}` are percent of the
 * image (`original_width` x `original_height`). We write tasks with `predictions` (pre-labels a
 * person corrects) and read the export's `annotations` (what the person submitted).
 */
export interface LabelStudioWriteOptions {
  /** `predictions[].model_version`: which model proposed the boxes. */
  readonly modelVersion: string;
  /** `data.image` for an image. Default: Label Studio's local-files URL of its file name. */
  readonly imageUrl?: (image: DatasetImage) => string;
  /** `from_name` / `to_name` of the labelling config. Default `label` / `image` (Label Studio's bbox template). */
  readonly fromName?: string;
  readonly toName?: string;
}

export interface LabelStudioReadOptions extends ReadOptions {
  /** Folder the images are found in, by file name. Default: the JSON file's folder. */
  readonly imageRoot?: string;
  /** Read `predictions` instead of `annotations` (to read back pre-labels). Default `annotations`. */
  readonly from?: 'annotations' | 'predictions';
  /** Class names in label order; default: the names used, sorted. */
  readonly classes?: readonly string[];
}

type Json = Record<string, unknown>;

/** The `data.image` URL Label Studio serves a local file under (with `LOCAL_FILES_SERVING_ENABLED`). */
export function localFilesUrl(relativePath: string): string {
  return `/data/local-files/?d=${encodeURIComponent(relativePath.split('\\').join('/')).replace(/%2F/g, '/')}`;
}

/** The JSON tasks array (with `predictions`) for a dataset of proposals. */
export function toLabelStudioTasks(dataset: Dataset, opts: LabelStudioWriteOptions): Json[] {
  const url = opts.imageUrl ?? ((im: DatasetImage) => localFilesUrl(basename(im.file)));
  return dataset.images.map((im) => {
    const result = Array.from(im.labels, (l, k) => {
      const [x1, y1, x2, y2] = im.boxes.subarray(4 * k, 4 * k + 4);
      return {
        id: `bmc-${im.id}-${k + 1}`,
        type: 'rectanglelabels',
        from_name: opts.fromName ?? 'label',
        to_name: opts.toName ?? 'image',
        original_width: im.width,
        original_height: im.height,
        image_rotation: 0,
        value: {
          x: (100 * x1!) / im.width,
          y: (100 * y1!) / im.height,
          width: (100 * (x2! - x1!)) / im.width,
          height: (100 * (y2! - y1!)) / im.height,
          rotation: 0,
          rectanglelabels: [dataset.categories[l]!.name],
        },
        ...(im.scores ? { score: im.scores[k] } : {}),
      };
    });
    // The task's score sorts tasks in Label Studio's data manager: the weakest box, so the
    // images that most need a look come first when sorted ascending.
    const score = im.scores?.length ? Math.min(...im.scores) : 1;
    return {
      data: { image: url(im) },
      predictions: [{ model_version: opts.modelVersion, score, result }],
    };
  });
}

/** Writes Label Studio JSON tasks with predictions (temp file + rename). */
export async function writeLabelStudio(
  dataset: Dataset,
  file: string,
  opts: LabelStudioWriteOptions,
): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(toLabelStudioTasks(dataset, opts), null, 1)}\n`);
}

/** Reads a Label Studio JSON export (or tasks with predictions, with `from: 'predictions'`). */
export async function readLabelStudio(file: string, opts: LabelStudioReadOptions = {}): Promise<Dataset> {
  return parseLabelStudio(await readText(file), file, opts);
}

/**
 * The image file a task refers to: the file name at the end of `data.image`, without the
 * 8-hex-digit prefix Label Studio adds to uploads (`/data/upload/3/1a2b3c4d-smear.jpg`).
 */
export function imageNameOf(url: string): string {
  let path = url;
  const q = url.indexOf('?d=');
  if (q >= 0) path = url.slice(q + 3);
  path = path.replace(/[?#].*$/, '');
  let name = basename(safeDecode(path));
  if (/\/data\/upload\//.test(url)) name = name.replace(/^[0-9a-f]{8}-/, '');
  return name;
}

export async function parseLabelStudio(
  text: string,
  file: string,
  opts: LabelStudioReadOptions = {},
): Promise<Dataset> {
  const v: Validator = new Validator(opts.policy);
  const from = opts.from ?? 'annotations';
  if (text.trim() === '') v.fail(file, undefined, 'file is empty');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    v.fail(file, undefined, `malformed JSON: ${(e as Error).message.replace(/ in JSON.*$/, '')}`);
  }
  // A single task is accepted as well as the array Label Studio exports.
  const tasks = Array.isArray(doc) ? doc : isObject(doc) && 'data' in doc ? [doc] : undefined;
  if (!tasks)
    v.fail(
      file,
      undefined,
      'expected a JSON array of Label Studio tasks ({ "data": ..., "annotations": [...] })',
    );
  const root = opts.imageRoot ?? dirname(file);

  interface Draft {
    name: string;
    where: string;
    width?: number;
    height?: number;
    boxes: { name: string; pct: [number, number, number, number]; where: string; score?: number }[];
  }
  const drafts: Draft[] = [];
  const seen = new Map<string, string>();
  for (let t = 0; t < tasks.length; t++) {
    const task = tasks[t];
    let where = `task ${t + 1}`;
    if (!isObject(task)) v.fail(file, where, 'task is not an object');
    if (task.id !== undefined) where = `task ${t + 1} (id ${String(task.id)})`;
    const data = task.data;
    if (!isObject(data) || typeof data.image !== 'string' || data.image === '')
      v.fail(file, where, '"data.image" is missing (the image this task labels)');
    const name = imageNameOf(data.image);
    where = `${where}, image "${name}"`;
    const prior = seen.get(name);
    if (prior) v.fail(file, where, `image "${name}" is labelled again (also in ${prior})`);
    seen.set(name, where);
    const list = task[from];
    if (list !== undefined && !Array.isArray(list)) v.fail(file, where, `"${from}" is not an array`);
    // Cancelled (skipped) annotations are not labels; of the rest, the latest submission counts.
    const live = ((list ?? []) as unknown[]).filter((a) => isObject(a) && a.was_cancelled !== true) as Json[];
    if (from === 'annotations' && live.length === 0) {
      v.problem(
        file,
        where,
        'no submitted annotation (the task was not labelled or was skipped)',
        'dropped-image',
      );
      continue;
    }
    const chosen = live.length > 1 ? latest(live) : live[0];
    const result: unknown = chosen?.result ?? [];
    if (!Array.isArray(result)) v.fail(file, where, `"${from}[].result" is not an array`);
    const draft: Draft = { name, where, boxes: [] };
    result.forEach((r, k) => {
      const here = `${where}, result ${k + 1}`;
      if (!isObject(r)) v.fail(file, here, 'result is not an object');
      if (isNumber(r.original_width) && isNumber(r.original_height)) {
        if (
          draft.width !== undefined &&
          (draft.width !== r.original_width || draft.height !== r.original_height)
        )
          v.fail(
            file,
            here,
            `original size ${r.original_width}x${r.original_height} differs from ${draft.width}x${draft.height} in the same task`,
          );
        draft.width = r.original_width;
        draft.height = r.original_height;
      }
      if (r.type !== 'rectanglelabels') {
        v.problem(
          file,
          here,
          `result type "${String(r.type)}" is not a rectangle (rectanglelabels)`,
          'ignored',
        );
        return;
      }
      const val = r.value;
      if (!isObject(val)) {
        v.problem(file, here, 'rectangle has no "value"', 'dropped-box');
        return;
      }
      const labels = val.rectanglelabels;
      if (!Array.isArray(labels) || labels.length !== 1 || typeof labels[0] !== 'string') {
        v.problem(
          file,
          here,
          `"value.rectanglelabels" should hold one label, got ${JSON.stringify(labels)}`,
          'dropped-box',
        );
        return;
      }
      const pct: number[] = [];
      for (const key of ['x', 'y', 'width', 'height']) {
        if (!isNumber(val[key])) {
          v.problem(
            file,
            here,
            `"value.${key}" ${val[key] === undefined ? 'is missing' : `${JSON.stringify(val[key])} is not a number`}`,
            'dropped-box',
          );
          return;
        }
        pct.push(val[key] as number);
      }
      if (isNumber(val.rotation) && val.rotation !== 0) {
        v.problem(
          file,
          here,
          `rotated rectangle (${val.rotation} degrees): not an axis-aligned box`,
          'dropped-box',
        );
        return;
      }
      draft.boxes.push({
        name: labels[0] as string,
        pct: pct as [number, number, number, number],
        where: `${here} (${labels[0]})`,
        ...(isNumber(r.score) ? { score: r.score } : {}),
      });
    });
    drafts.push(draft);
  }

  const names = opts.classes ?? [...new Set(drafts.flatMap((d) => d.boxes.map((b) => b.name)))].sort();
  const labelOf = new Map(names.map((n, i) => [n, i]));
  const categories: Category[] = names.map((name, i) => ({ id: i + 1, name }));
  const withScores = from === 'predictions';
  let images: DatasetImage[] = [];
  for (const d of drafts) {
    const imageFile = join(root, d.name);
    let { width, height } = d;
    if (width === undefined || height === undefined) {
      // No box says the size (an image with no cells): the image header does.
      try {
        ({ width, height } = await imageSize(imageFile));
      } catch (e) {
        v.problem(
          file,
          d.where,
          `no box gives the image size and the image cannot be read: ${(e as DataError).problem ?? (e as Error).message}`,
          'dropped-image',
        );
        continue;
      }
    }
    const xyxy: number[] = [];
    const labels: number[] = [];
    const scores: number[] = [];
    for (const b of d.boxes) {
      const label = labelOf.get(b.name);
      if (label === undefined) {
        v.problem(file, b.where, `unknown label "${b.name}" (known: ${names.join(', ')})`, 'dropped-box');
        continue;
      }
      const [x, y, w, h] = b.pct;
      const box = checkBox(
        v,
        file,
        b.where,
        [(x * width) / 100, (y * height) / 100, ((x + w) * width) / 100, ((y + h) * height) / 100],
        width,
        height,
        opts,
      );
      if (!box) continue;
      xyxy.push(...box);
      labels.push(label);
      scores.push(b.score ?? 1);
    }
    images.push({
      id: images.length + 1,
      file: imageFile,
      width,
      height,
      boxes: Float32Array.from(xyxy),
      labels: Int32Array.from(labels),
      iscrowd: new Uint8Array(labels.length),
      difficult: new Uint8Array(labels.length),
      source: file,
      ...(withScores ? { scores: Float32Array.from(scores) } : {}),
    });
  }
  if (opts.checkImages ?? true) {
    images = await checkImageFiles(
      images,
      v,
      (img) => ({ file, where: `image "${basename(img.file)}"` }),
      opts.imageCheck,
    );
  }
  return { categories, images, report: v.report() };
}

/** The most recently updated (else created) of several submitted annotations. */
function latest(list: Json[]): Json {
  const t = (a: Json) => Date.parse(String(a.updated_at ?? a.created_at ?? '')) || 0;
  return list.reduce((a, b) => (t(b) >= t(a) ? b : a));
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isNumber(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}
