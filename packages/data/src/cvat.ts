import { basename, dirname, join } from 'node:path';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { checkBox } from './box-check.js';
import { type ReadOptions, readText } from './coco.js';
import type { Category, Dataset, DatasetImage } from './dataset.js';
import { checkImageFiles } from './image-check.js';
import { writeFileAtomic } from './image-io.js';
import { Validator } from './validation.js';

/**
 * CVAT for images 1.1 (https://docs.cvat.ai/docs/other/xml_format): one `annotations.xml` with
 * `<meta><task><labels>` and one `<image id name width height>` per image holding
 * `<box label xtl ytl xbr ybr occluded z_order source>`. Coordinates are continuous pixels with the
 * origin at the image's top-left corner, the same convention as our boxes, so nothing shifts.
 */
export interface CvatReadOptions extends ReadOptions {
  /** Folder the `<image name>` paths are relative to. Default: `images/` beside the XML (CVAT's export zip). */
  readonly imageRoot?: string;
  /** Class names in label order; default: the `<meta>` labels, else the names boxes use, sorted. */
  readonly classes?: readonly string[];
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (name) =>
    [
      'image',
      'box',
      'label',
      'attribute',
      'polygon',
      'polyline',
      'points',
      'mask',
      'tag',
      'cuboid',
      'ellipse',
      'skeleton',
    ].includes(name),
});

/** Shapes other than `<box>` that CVAT can put in an image: not detection labels, reported and skipped. */
const OTHER_SHAPES = ['polygon', 'polyline', 'points', 'mask', 'cuboid', 'ellipse', 'skeleton'] as const;

type Json = Record<string, unknown>;

/** Reads a CVAT for images 1.1 XML file. Structural problems throw; per-box ones follow the policy. */
export async function readCvat(file: string, opts: CvatReadOptions = {}): Promise<Dataset> {
  return parseCvat(await readText(file), file, opts);
}

/** {@link readCvat} on already-loaded text; `file` is used in messages and for the image root. */
export async function parseCvat(text: string, file: string, opts: CvatReadOptions = {}): Promise<Dataset> {
  const v: Validator = new Validator(opts.policy);
  if (text.trim() === '') v.fail(file, undefined, 'file is empty');
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    const { line, col, msg } = valid.err;
    v.fail(file, `line ${line}, column ${col}`, `malformed XML: ${msg}`);
  }
  const doc = parser.parse(text) as Json;
  const root = doc.annotations as Json | undefined;
  if (!root || typeof root !== 'object')
    v.fail(file, undefined, 'no <annotations> root element (not a CVAT for images XML file)');
  if (root.version !== undefined && !/^1\.\d+$/.test(String(root.version)))
    v.fail(file, '<version>', `unsupported CVAT XML version "${String(root.version)}" (expected 1.x)`);
  if (root.track !== undefined)
    v.fail(file, '<track>', 'this is a "CVAT for video" export; export the task as "CVAT for images 1.1"');

  const metaLabels = labelsOf(root.meta);
  const rawImages = (root.image ?? []) as unknown[];
  const imageRoot = opts.imageRoot ?? join(dirname(file), 'images');

  interface Draft {
    image: Omit<DatasetImage, 'boxes' | 'labels' | 'iscrowd' | 'difficult'>;
    boxes: { name: string; box: [number, number, number, number]; where: string; score?: number }[];
  }
  const drafts: Draft[] = [];
  const seen = new Map<string, string>();
  rawImages.forEach((raw, i) => {
    if (!raw || typeof raw !== 'object') v.fail(file, `<image> ${i + 1}`, 'empty <image> element');
    const im = raw as Json;
    const name = typeof im['@_name'] === 'string' ? im['@_name'] : '';
    const here = `<image> ${i + 1}${name ? ` (name "${name}")` : ''}`;
    if (name === '') v.fail(file, here, '<image> has no name attribute');
    const width = positiveInt(im['@_width']);
    const height = positiveInt(im['@_height']);
    if (width === undefined || height === undefined)
      v.fail(
        file,
        here,
        `width "${String(im['@_width'])}" / height "${String(im['@_height'])}" are not positive integers`,
      );
    const prior = seen.get(name);
    if (prior) v.fail(file, here, `image name "${name}" repeats ${prior}`);
    seen.set(name, `<image> ${i + 1}`);
    for (const shape of OTHER_SHAPES) {
      const n = (im[shape] as unknown[] | undefined)?.length ?? 0;
      if (n) v.problem(file, here, `${n} <${shape}> shape(s): only <box> is a detection label`, 'ignored');
    }
    const boxes: Draft['boxes'] = [];
    ((im.box ?? []) as unknown[]).forEach((b, k) => {
      const box = (b ?? {}) as Json;
      const label = typeof box['@_label'] === 'string' ? box['@_label'] : '';
      const where = `${here}, <box> ${k + 1}${label ? ` (${label})` : ''}`;
      if (label === '') {
        v.problem(file, where, '<box> has no label attribute', 'dropped-box');
        return;
      }
      const coords: number[] = [];
      for (const key of ['xtl', 'ytl', 'xbr', 'ybr']) {
        const s = box[`@_${key}`];
        const x = typeof s === 'string' && s.trim() !== '' ? Number(s) : Number.NaN;
        if (!Number.isFinite(x)) {
          v.problem(
            file,
            where,
            `${key} ${s === undefined ? 'is missing' : `"${String(s)}" is not a number`}`,
            'dropped-box',
          );
          return;
        }
        coords.push(x);
      }
      if (box['@_rotation'] !== undefined && Number(box['@_rotation']) !== 0)
        v.problem(
          file,
          where,
          `rotated box (rotation ${String(box['@_rotation'])}): its axis-aligned corners are used`,
          'ignored',
        );
      const score = attributeNumber(box, 'score');
      boxes.push({
        name: label,
        box: coords as [number, number, number, number],
        where,
        ...(score !== undefined ? { score } : {}),
      });
    });
    drafts.push({
      image: { id: i + 1, file: join(imageRoot, name), width: width!, height: height!, source: file },
      boxes,
    });
  });

  const used = [...new Set(drafts.flatMap((d) => d.boxes.map((b) => b.name)))].sort();
  const names = opts.classes ?? (metaLabels.length ? metaLabels : used);
  const labelOf = new Map(names.map((n, i) => [n, i]));
  const categories: Category[] = names.map((name, i) => ({ id: i + 1, name }));
  const withScores = drafts.some((d) => d.boxes.some((b) => b.score !== undefined));
  let images: DatasetImage[] = drafts.map(({ image, boxes }) => {
    const xyxy: number[] = [];
    const labels: number[] = [];
    const scores: number[] = [];
    for (const b of boxes) {
      const label = labelOf.get(b.name);
      if (label === undefined) {
        v.problem(file, b.where, `unknown label "${b.name}" (known: ${names.join(', ')})`, 'dropped-box');
        continue;
      }
      const box = checkBox(v, file, b.where, b.box, image.width, image.height, opts);
      if (!box) continue;
      xyxy.push(...box);
      labels.push(label);
      scores.push(b.score ?? 1);
    }
    return {
      ...image,
      boxes: Float32Array.from(xyxy),
      labels: Int32Array.from(labels),
      iscrowd: new Uint8Array(labels.length),
      difficult: new Uint8Array(labels.length),
      ...(withScores ? { scores: Float32Array.from(scores) } : {}),
    };
  });
  if (opts.checkImages ?? true) {
    images = await checkImageFiles(
      images,
      v,
      (img) => ({ file, where: `<image> "${basename(img.file)}"` }),
      opts.imageCheck,
    );
  }
  return { categories, images, report: v.report() };
}

export interface CvatWriteOptions {
  /** `<meta><task><name>`. Default: the file's folder name. */
  readonly taskName?: string;
  /** `<image name>` for an image. Default: its file name (CVAT matches names to the uploaded files). */
  readonly imageName?: (image: DatasetImage) => string;
}

/**
 * Writes CVAT for images 1.1 XML (temp file + rename). Proposals carry their score as a `score`
 * attribute and `source="auto"`, so a reviewer can sort or filter on it in CVAT.
 */
export async function writeCvat(dataset: Dataset, file: string, opts: CvatWriteOptions = {}): Promise<void> {
  await writeFileAtomic(file, toCvatXml(dataset, opts.taskName ?? basename(dirname(file)), opts));
}

/** The CVAT for images 1.1 XML text for a dataset. */
export function toCvatXml(dataset: Dataset, taskName: string, opts: CvatWriteOptions = {}): string {
  const nameOf = opts.imageName ?? ((im: DatasetImage) => basename(im.file));
  const doc = {
    '?xml': { '@_version': '1.0', '@_encoding': 'utf-8' },
    annotations: {
      version: '1.1',
      meta: {
        task: {
          name: taskName,
          size: dataset.images.length,
          mode: 'annotation',
          labels: {
            label: dataset.categories.map((c) => ({ name: c.name, type: 'rectangle', attributes: '' })),
          },
        },
      },
      image: dataset.images.map((im, i) => ({
        '@_id': i,
        '@_name': nameOf(im),
        '@_width': im.width,
        '@_height': im.height,
        box: Array.from(im.labels, (l, k) => {
          const [x1, y1, x2, y2] = im.boxes.subarray(4 * k, 4 * k + 4);
          return {
            '@_label': dataset.categories[l]!.name,
            '@_source': im.scores ? 'auto' : 'manual',
            '@_occluded': 0,
            '@_xtl': coord(x1!),
            '@_ytl': coord(y1!),
            '@_xbr': coord(x2!),
            '@_ybr': coord(y2!),
            '@_z_order': 0,
            ...(im.scores ? { attribute: [{ '@_name': 'score', '#text': im.scores[k]!.toFixed(4) }] } : {}),
          };
        }),
      })),
    },
  };
  const builder = new XMLBuilder({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    format: true,
    indentBy: '  ',
    suppressEmptyNode: false,
  });
  return builder.build(doc) as string;
}

/** CVAT writes two decimals; so do we (a hundredth of a pixel is far below what a person can click). */
function coord(x: number): string {
  return x.toFixed(2);
}

function labelsOf(meta: unknown): string[] {
  // Task exports put labels under <task>, project exports under <project>.
  const m = (meta ?? {}) as Json;
  const holder = ((m.task ?? m.project ?? {}) as Json).labels as Json | undefined;
  const list = (holder?.label ?? []) as unknown[];
  return list.map((l) => (l as Json)?.name).filter((n): n is string => typeof n === 'string' && n !== '');
}

function attributeNumber(box: Json, name: string): number | undefined {
  for (const a of (box.attribute ?? []) as Json[]) {
    if (a?.['@_name'] === name) {
      const x = Number(a['#text']);
      return Number.isFinite(x) ? x : undefined;
    }
  }
  return undefined;
}

function positiveInt(x: unknown): number | undefined {
  const n = typeof x === 'string' ? Number(x) : Number.NaN;
  return Number.isInteger(n) && n > 0 ? n : undefined;
}
