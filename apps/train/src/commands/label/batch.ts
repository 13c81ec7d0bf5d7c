import { mkdir, readFile } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { InputError } from '@bmc/core';
import {
  type Dataset,
  linkImage,
  localFilesUrl,
  uniqueStems,
  writeCoco,
  writeCvat,
  writeFileAtomic,
  writeLabelStudio,
  writeVoc,
  writeYolo,
} from '@bmc/data';

export const PROPOSAL_FORMATS = ['coco', 'voc', 'yolo', 'cvat', 'labelstudio'] as const;
export type ProposalFormat = (typeof PROPOSAL_FORMATS)[number];

/** Where each format's file or folder lies inside a batch folder. */
export const BATCH_PATHS: Record<ProposalFormat, string> = {
  coco: 'coco.json',
  voc: 'voc',
  yolo: 'yolo',
  cvat: 'cvat.xml',
  labelstudio: 'labelstudio.json',
};

/** `batch.json`: what a batch folder holds and how it was made (read back by `bmc label import`). */
export interface BatchManifest {
  readonly kind: 'bmc-label-batch';
  readonly name: string;
  readonly createdAt: string;
  readonly model: string;
  readonly modelVersion: string;
  readonly threshold: number;
  /** The cell-type classifier that named each box's class (`--classifier`), when one did. */
  readonly classifier?: { model: string; version: string; classNames: string[]; threshold: number };
  readonly formats: readonly ProposalFormat[];
  /** How the images were chosen: `all` (propose), `rank` or `random` (rank). */
  readonly selection: 'all' | 'rank' | 'random';
  readonly images: readonly {
    name: string;
    file: string;
    proposals: number;
    acquisition?: { score: number; uncertainty: number; disagreement: number };
  }[];
  readonly failed: readonly { file: string; error: string }[];
}

export function parseFormats(list: string): ProposalFormat[] {
  const out = list
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  for (const f of out)
    if (!(PROPOSAL_FORMATS as readonly string[]).includes(f))
      throw new InputError(`--format: unknown format "${f}" (choose from ${PROPOSAL_FORMATS.join(', ')})`);
  if (out.length === 0) throw new InputError('--format: no format given');
  return [...new Set(out)] as ProposalFormat[];
}

/**
 * Writes a batch folder: `images/` (links to the smears), the proposals in each format and
 * `batch.json`. Every file goes through a temporary name; `batch.json` is written last, so a
 * folder with a manifest is complete.
 */
export async function writeBatch(
  out: string,
  proposals: Dataset,
  formats: readonly ProposalFormat[],
  manifest: Omit<BatchManifest, 'kind' | 'formats' | 'name' | 'createdAt'> & { name?: string },
  opts: { labelStudioRoot?: string } = {},
): Promise<BatchManifest> {
  const root = resolve(out);
  // Per-image formats name files by stem: refuse a clash before writing anything.
  uniqueStems(proposals.images, 'a batch folder');
  await mkdir(root, { recursive: true });
  const linked: Dataset = {
    ...proposals,
    images: proposals.images.map((im) => ({ ...im, file: join(root, 'images', basename(im.file)) })),
  };
  for (let i = 0; i < proposals.images.length; i++)
    await linkImage(proposals.images[i]!.file, linked.images[i]!.file);
  for (const f of formats) {
    const path = join(root, BATCH_PATHS[f]);
    if (f === 'coco') await writeCoco(linked, path);
    else if (f === 'voc') await writeVoc(linked, path);
    else if (f === 'yolo') await writeYolo(linked, path);
    else if (f === 'cvat') await writeCvat(linked, path, { taskName: basename(root) });
    else {
      const lsRoot = resolve(opts.labelStudioRoot ?? process.cwd());
      await writeLabelStudio(linked, path, {
        modelVersion: manifest.modelVersion,
        imageUrl: (im) => localFilesUrl(relative(lsRoot, im.file)),
      });
    }
  }
  const full: BatchManifest = {
    kind: 'bmc-label-batch',
    name: manifest.name ?? basename(root),
    createdAt: new Date().toISOString(),
    formats: [...formats],
    ...manifest,
  };
  await writeFileAtomic(join(root, 'batch.json'), `${JSON.stringify(full, null, 1)}\n`);
  if (full.failed.length)
    await writeFileAtomic(
      join(root, 'failed.csv'),
      `file,error\n${full.failed.map((f) => `${csv(f.file)},${csv(f.error)}\n`).join('')}`,
    );
  return full;
}

/** The manifest of a batch folder, or undefined when there is none. */
export async function readBatchManifest(dir: string): Promise<BatchManifest | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, 'batch.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const m = JSON.parse(text) as BatchManifest;
    return m.kind === 'bmc-label-batch' ? m : undefined;
  } catch {
    throw new InputError(`${join(dir, 'batch.json')}: malformed JSON (not a batch manifest bmc wrote?)`);
  }
}

function csv(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
