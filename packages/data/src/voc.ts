import { mkdir, readdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { checkBox } from './box-check.js';
import { type ReadOptions, readText } from './coco.js';
import type { Category, Dataset, DatasetImage } from './dataset.js';
import { DataError } from './errors.js';
import { checkImageFiles } from './image-check.js';
import { writeFileAtomic } from './image-io.js';
import { linkImage, uniqueStems } from './image-links.js';
import { Validator } from './validation.js';

export interface VocReadOptions extends ReadOptions {
  /** Read only the ids listed in `ImageSets/Main/<split>.txt`. Default: every XML in `Annotations/`. */
  readonly split?: string;
  /**
   * Class names in label order. Given: any other name is an "unknown category" problem. Default:
   * the names found, sorted, so every split of one dataset gets the same label indices.
   */
  readonly classes?: readonly string[];
}

interface ParsedVoc {
  fileName: string | undefined;
  width: number;
  height: number;
  objects: { name: string; box: [number, number, number, number]; difficult: number; where: string }[];
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (name) => name === 'object',
});

/**
 * Reads a Pascal VOC folder (`Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/*.txt`).
 * VOC pixel indices are 1-based and `xmax`/`ymax` inclusive, so `xmin..xmax` becomes the
 * continuous box `[xmin - 1, xmax]`; a box with `xmin == xmax` is one pixel wide, not empty.
 */
export async function readVoc(root: string, opts: VocReadOptions = {}): Promise<Dataset> {
  const v: Validator = new Validator(opts.policy);
  const annDir = join(root, 'Annotations');
  let ids: string[];
  if (opts.split) {
    const listFile = join(root, 'ImageSets', 'Main', `${opts.split}.txt`);
    const text = await readText(listFile);
    ids = text
      .split(/\r?\n/)
      .map((l) => l.trim().split(/\s+/)[0]!)
      .filter((l) => l !== '');
    if (ids.length === 0) v.fail(listFile, undefined, 'split list is empty');
  } else {
    let names: string[];
    try {
      names = await readdir(annDir);
    } catch {
      throw new DataError(annDir, undefined, 'Annotations folder not found');
    }
    ids = names
      .filter((n) => n.endsWith('.xml'))
      .map((n) => n.slice(0, -4))
      .sort();
  }

  const parsed: { id: string; file: string; ann: ParsedVoc }[] = [];
  for (const id of ids) {
    const file = join(annDir, `${id}.xml`);
    let text: string;
    try {
      text = await readText(file);
    } catch (e) {
      v.problem((e as DataError).file, undefined, (e as DataError).problem, 'dropped-image');
      continue;
    }
    parsed.push({ id, file, ann: parseVocXml(text, file, v) });
  }

  const names = opts.classes ?? [...new Set(parsed.flatMap((p) => p.ann.objects.map((o) => o.name)))].sort();
  const categories: Category[] = names.map((name, i) => ({ id: i + 1, name }));
  const labelOf = new Map(names.map((n, i) => [n, i]));

  let images: DatasetImage[] = parsed.map(({ id, file, ann }, i) => {
    const boxes: number[] = [];
    const labels: number[] = [];
    const difficult: number[] = [];
    for (const o of ann.objects) {
      const label = labelOf.get(o.name);
      if (label === undefined) {
        v.problem(file, o.where, `unknown category "${o.name}" (known: ${names.join(', ')})`, 'dropped-box');
        continue;
      }
      const [xmin, ymin, xmax, ymax] = o.box;
      const box = checkBox(v, file, o.where, [xmin - 1, ymin - 1, xmax, ymax], ann.width, ann.height, opts);
      if (!box) continue;
      boxes.push(...box);
      labels.push(label);
      difficult.push(o.difficult);
    }
    const imageName = ann.fileName && extname(ann.fileName) ? basename(ann.fileName) : `${id}.jpg`;
    return {
      id: i + 1,
      file: join(root, 'JPEGImages', imageName),
      width: ann.width,
      height: ann.height,
      boxes: Float32Array.from(boxes),
      labels: Int32Array.from(labels),
      iscrowd: new Uint8Array(labels.length),
      difficult: Uint8Array.from(difficult),
      source: file,
    };
  });
  if (opts.checkImages ?? true) {
    images = await checkImageFiles(
      images,
      v,
      (img) => ({ file: img.source!, where: '<filename>' }),
      opts.imageCheck,
    );
  }
  return { categories, images, report: v.report() };
}

/** Parses one VOC annotation; structural problems throw, per-object ones go through `v`. */
export function parseVocXml(text: string, file: string, v: Validator): ParsedVoc {
  if (text.trim() === '') v.fail(file, undefined, 'file is empty');
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    const { line, col, msg } = valid.err;
    v.fail(file, `line ${line}, column ${col}`, `malformed XML: ${msg}`);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text) as Record<string, unknown>;
  } catch (e) {
    v.fail(file, undefined, `malformed XML: ${(e as Error).message.split('\n')[0]}`);
  }
  const ann = doc.annotation as Record<string, unknown> | undefined;
  if (!ann || typeof ann !== 'object') v.fail(file, undefined, 'no <annotation> root element');
  const size = ann.size as Record<string, unknown> | undefined;
  if (!size || typeof size !== 'object') v.fail(file, '<size>', 'missing <size> with <width> and <height>');
  const width = positiveInt(size.width);
  const height = positiveInt(size.height);
  if (width === undefined || height === undefined) {
    v.fail(
      file,
      '<size>',
      `image size ${String(size.width)}x${String(size.height)} is not two positive integers`,
    );
  }
  const objects: ParsedVoc['objects'] = [];
  const list = (ann.object ?? []) as unknown[];
  list.forEach((o, i) => {
    let where = `object ${i + 1}`;
    if (!o || typeof o !== 'object') {
      v.problem(file, where, 'empty <object>', 'dropped-box');
      return;
    }
    const obj = o as Record<string, unknown>;
    const name = typeof obj.name === 'string' ? obj.name : '';
    if (name === '') {
      v.problem(file, where, '<object> has no <name>', 'dropped-box');
      return;
    }
    where = `object ${i + 1} (${name})`;
    const bb = obj.bndbox as Record<string, unknown> | undefined;
    if (!bb || typeof bb !== 'object') {
      v.problem(file, where, '<object> has no <bndbox>', 'dropped-box');
      return;
    }
    const coords: number[] = [];
    for (const k of ['xmin', 'ymin', 'xmax', 'ymax']) {
      const raw = bb[k];
      const x = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
      if (!Number.isFinite(x)) {
        v.problem(
          file,
          where,
          `<${k}> ${raw === undefined ? 'is missing' : `"${String(raw)}" is not a number`}`,
          'dropped-box',
        );
        return;
      }
      coords.push(x);
    }
    objects.push({
      name,
      box: coords as [number, number, number, number],
      difficult: obj.difficult === '1' ? 1 : 0,
      where,
    });
  });
  return {
    fileName: typeof ann.filename === 'string' ? ann.filename : undefined,
    width: width!,
    height: height!,
    objects,
  };
}

function positiveInt(x: unknown): number | undefined {
  const n = typeof x === 'string' ? Number(x) : Number.NaN;
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export interface VocWriteOptions {
  /** The `ImageSets/Main/<split>.txt` listing the images. Default `default` (as CVAT writes it). */
  readonly split?: string;
  /** Link (or copy) each image into `JPEGImages/`, so the folder is a complete VOC dataset. Default true. */
  readonly linkImages?: boolean;
}

/**
 * Writes a Pascal VOC folder: `Annotations/<stem>.xml` per image, `ImageSets/Main/<split>.txt` and
 * (by default) the images linked into `JPEGImages/`. Boxes become VOC's 1-based inclusive integer
 * pixels (`[x1, x2]` -> `xmin = round(x1) + 1`, `xmax = round(x2)`), so a box moves by at most
 * half a pixel. Proposals keep their score in a `<score>` element (ignored by VOC tools).
 */
export async function writeVoc(dataset: Dataset, root: string, opts: VocWriteOptions = {}): Promise<void> {
  const stems = uniqueStems(dataset.images, 'Pascal VOC');
  const builder = new XMLBuilder({ format: true, indentBy: '  ' });
  for (let i = 0; i < dataset.images.length; i++) {
    const im = dataset.images[i]!;
    const name = basename(im.file);
    if (opts.linkImages ?? true) await linkImage(im.file, join(root, 'JPEGImages', name));
    const object = Array.from(im.labels, (l, k) => {
      const [x1, y1, x2, y2] = im.boxes.subarray(4 * k, 4 * k + 4);
      return {
        name: dataset.categories[l]!.name,
        pose: 'Unspecified',
        truncated: 0,
        difficult: im.difficult[k] ?? 0,
        ...(im.scores ? { score: im.scores[k]!.toFixed(4) } : {}),
        bndbox: {
          xmin: Math.max(1, Math.round(x1!) + 1),
          ymin: Math.max(1, Math.round(y1!) + 1),
          xmax: Math.max(Math.round(x1!) + 1, Math.min(im.width, Math.round(x2!))),
          ymax: Math.max(Math.round(y1!) + 1, Math.min(im.height, Math.round(y2!))),
        },
      };
    });
    const xml = builder.build({
      annotation: {
        folder: 'JPEGImages',
        filename: name,
        path: im.file,
        source: { database: 'bmc' },
        size: { width: im.width, height: im.height, depth: 3 },
        segmented: 0,
        object,
      },
    }) as string;
    await mkdir(join(root, 'Annotations'), { recursive: true });
    await writeFileAtomic(join(root, 'Annotations', `${stems[i]}.xml`), xml);
  }
  await mkdir(join(root, 'ImageSets', 'Main'), { recursive: true });
  await writeFileAtomic(
    join(root, 'ImageSets', 'Main', `${opts.split ?? 'default'}.txt`),
    stems.map((s) => `${s}\n`).join(''),
  );
}
