import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { toCoco } from '../coco.js';
import type { Category, Dataset, DatasetImage } from '../dataset.js';
import { resizeImage } from '../geometry.js';
import { encodePng, type ImageHWC, toBytes, writeFileAtomic } from '../image-io.js';
import type { SampleSource } from '../loader.js';
import { CELL_TYPES } from './cells.js';
import { generateSmear, type SmearOptions } from './smear.js';

/** `cell`: one class (what the class-agnostic detector learns); `type`: the cell type as category. */
export type SmearCategories = 'cell' | 'type';

export function smearCategories(mode: SmearCategories, labelRbc = false): Category[] {
  if (mode === 'cell') return [{ id: 1, name: 'cell' }];
  const names: string[] = [...CELL_TYPES, ...(labelRbc ? ['rbc'] : [])];
  return names.map((name, i) => ({ id: i + 1, name }));
}

/**
 * The generator as a loader source: sample `i` is `generateSmear(seed, offset + i)`, drawn on
 * demand (no disk), resized in TS when the augmentation asks for another size. With `cache`,
 * each field is drawn once and kept as 8-bit RGB (`width * height * 3` bytes per field), so
 * later epochs only pay for augmentation.
 */
export function smearSource(
  opts: SmearOptions & {
    count: number;
    seed: number;
    offset?: number;
    categories?: SmearCategories;
    cache?: boolean;
  },
): SampleSource {
  const W = opts.width ?? 320;
  const H = opts.height ?? 320;
  const single = (opts.categories ?? 'cell') === 'cell';
  const cache = new Map<number, { bytes: Uint8Array; boxes: Float32Array; labels: Int32Array }>();
  const field = (i: number): { image: ImageHWC; boxes: Float32Array; labels: Int32Array } => {
    const hit = cache.get(i);
    if (hit) {
      const data = new Float32Array(hit.bytes.length);
      for (let k = 0; k < data.length; k++) data[k] = hit.bytes[k]! / 255;
      return { image: { data, width: W, height: H }, boxes: hit.boxes, labels: hit.labels };
    }
    const s = generateSmear(opts.seed, (opts.offset ?? 0) + i, { ...opts, debugMasks: false });
    if (!opts.cache) return s;
    const bytes = toBytes(s.image);
    cache.set(i, { bytes, boxes: s.boxes, labels: s.labels });
    // Served from the 8-bit copy from the first epoch on, so every epoch sees the same pixels.
    return field(i);
  };
  return {
    length: opts.count,
    size: () => ({ width: W, height: H }),
    async load(i, width, height) {
      const s = field(i);
      const labels = single ? new Int32Array(s.labels.length) : s.labels;
      if (width === W && height === H) return { image: s.image, boxes: s.boxes, labels, id: i };
      const sx = width / W;
      const sy = height / H;
      const boxes = s.boxes.map((v, k) => v * (k % 2 === 0 ? sx : sy));
      return { image: resizeImage(s.image, width, height), boxes, labels, id: i };
    },
  };
}

export interface WriteSmearsOptions extends SmearOptions {
  readonly seed: number;
  /** Images per split, e.g. `{ train: 400, val: 100 }`; splits take consecutive generator indices. */
  readonly splits: Record<string, number>;
  readonly categories?: SmearCategories;
}

/**
 * Writes `images/<split>/smear_<index>.png` and `<split>.json` (COCO) under `dir`. Returns the
 * datasets as written. Same seed and options give identical files.
 */
export async function writeSmearDataset(
  dir: string,
  opts: WriteSmearsOptions,
): Promise<Record<string, Dataset>> {
  const mode = opts.categories ?? 'cell';
  const categories = smearCategories(mode, opts.labelRbc);
  const out: Record<string, Dataset> = {};
  let index = 0;
  for (const [split, count] of Object.entries(opts.splits)) {
    const imgDir = join(dir, 'images', split);
    await mkdir(imgDir, { recursive: true });
    const images: DatasetImage[] = [];
    for (let k = 0; k < count; k++, index++) {
      const s = generateSmear(opts.seed, index, { ...opts, debugMasks: false });
      const file = join(imgDir, `smear_${String(index).padStart(6, '0')}.png`);
      await writeFileAtomic(file, await encodePng(s.image));
      images.push({
        id: index + 1,
        file,
        width: s.image.width,
        height: s.image.height,
        boxes: s.boxes,
        labels: mode === 'cell' ? new Int32Array(s.labels.length) : s.labels,
        iscrowd: new Uint8Array(s.labels.length),
        difficult: new Uint8Array(s.labels.length),
      });
    }
    const ds: Dataset = { categories, images, report: { issues: [] } };
    await writeFileAtomic(join(dir, `${split}.json`), JSON.stringify(toCoco(ds, dir)));
    out[split] = ds;
  }
  return out;
}

/**
 * A grid of images with their boxes drawn (1 px outlines), as PNG: for READMEs and for looking
 * at what a dataset or an augmentation produces.
 */
export async function contactSheet(
  items: readonly { image: ImageHWC; boxes?: Float32Array }[],
  opts: { columns?: number; gap?: number; boxColor?: readonly [number, number, number] } = {},
): Promise<Buffer> {
  const cols = opts.columns ?? 4;
  const gap = opts.gap ?? 4;
  const cw = Math.max(...items.map((i) => i.image.width));
  const ch = Math.max(...items.map((i) => i.image.height));
  const rows = Math.ceil(items.length / cols);
  const W = cols * cw + (cols + 1) * gap;
  const H = rows * ch + (rows + 1) * gap;
  const sheet = new Uint8Array(W * H * 3).fill(255);
  const color = opts.boxColor ?? [0, 200, 60];
  items.forEach((it, n) => {
    const ox = gap + (n % cols) * (cw + gap);
    const oy = gap + Math.floor(n / cols) * (ch + gap);
    const bytes = toBytes(it.image);
    const { width: w, height: h } = it.image;
    for (let y = 0; y < h; y++)
      sheet.set(bytes.subarray(y * w * 3, (y + 1) * w * 3), ((oy + y) * W + ox) * 3);
    const b = it.boxes ?? new Float32Array(0);
    const put = (x: number, y: number) => {
      if (x < 0 || y < 0 || x >= w || y >= h) return;
      sheet.set(color, ((oy + y) * W + ox + x) * 3);
    };
    for (let k = 0; k < b.length; k += 4) {
      const x1 = Math.round(b[k]!);
      const y1 = Math.round(b[k + 1]!);
      const x2 = Math.round(b[k + 2]!) - 1;
      const y2 = Math.round(b[k + 3]!) - 1;
      for (let x = x1; x <= x2; x++) {
        put(x, y1);
        put(x, y2);
      }
      for (let y = y1; y <= y2; y++) {
        put(x1, y);
        put(x2, y);
      }
    }
  });
  return sharp(sheet, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toBuffer();
}
