import { copyFile, mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError, readCoco, readVoc, readYolo, type ValidationPolicy } from '../src/index.js';

/**
 * Table-driven corpus of broken inputs (test/fixtures/malformed/cases.json). Each case states,
 * by hand, where the error must point and what it must say; the loader builds the smallest
 * dataset folder around the file so the real reader entry point runs.
 */
const dir = join(import.meta.dirname, 'fixtures', 'malformed');
interface Case {
  file: string;
  where: string | null;
  problem: string;
  lenient: 'error' | 'clipped' | 'dropped-box' | 'dropped-image' | 'ignored';
  checkImages?: boolean;
  classes?: string[];
}
const cases: Case[] = JSON.parse(await readFile(join(dir, 'cases.json'), 'utf8'));
const work = await mkdtemp(join(tmpdir(), 'bmc-malformed-'));
afterAll(async () => {
  const { rm } = await import('node:fs/promises');
  await rm(work, { recursive: true, force: true });
});

async function run(c: Case, policy: ValidationPolicy) {
  const src = join(dir, c.file);
  const stem = c.file.replace(/\.[^.]+$/, '');
  const root = join(work, `${policy}-${stem}`);
  if (c.file.startsWith('coco_')) {
    return readCoco(src, { policy, checkImages: c.checkImages ?? false, imageRoot: join(dir, 'images') });
  }
  if (c.file.startsWith('voc_')) {
    await mkdir(join(root, 'Annotations'), { recursive: true });
    await mkdir(join(root, 'JPEGImages'), { recursive: true });
    await copyFile(src, join(root, 'Annotations', c.file));
    await copyFile(join(dir, 'images', 'ok.png'), join(root, 'JPEGImages', 'ok.png'));
    return readVoc(root, { policy, ...(c.classes ? { classes: c.classes } : {}) });
  }
  await mkdir(join(root, 'images', 'train'), { recursive: true });
  await mkdir(join(root, 'labels', 'train'), { recursive: true });
  if (c.file.startsWith('yaml_')) {
    await copyFile(src, join(root, 'data.yaml'));
  } else {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(root, 'data.yaml'), "train: images/train\nnames: ['WBC', 'RBC']\n");
    await copyFile(join(dir, 'images', 'ok.png'), join(root, 'images', 'train', `${stem}.png`));
    await copyFile(src, join(root, 'labels', 'train', c.file));
  }
  return readYolo(root, { policy });
}

describe('malformed input corpus', () => {
  it('has at least 25 cases, one per fixture file', async () => {
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(dir)).filter((f) => f !== 'cases.json' && f !== 'images');
    expect(cases.length).toBeGreaterThanOrEqual(25);
    expect(new Set(cases.map((c) => c.file))).toEqual(new Set(files));
  });

  it.each(cases)('strict: $file', async (c) => {
    const err = await run(c, 'strict').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'expected an error').toBeInstanceOf(DataError);
    const e = err as DataError;
    expect(e.file.endsWith(c.file.startsWith('yaml_') ? 'data.yaml' : c.file), e.message).toBe(true);
    if (c.where === null) expect(e.where, e.message).toBeUndefined();
    else expect(e.where, e.message).toContain(c.where);
    expect(e.problem, e.message).toContain(c.problem);
    expect(e.message).toBe(e.where ? `${e.file}: ${e.where}: ${e.problem}` : `${e.file}: ${e.problem}`);
  });

  it.each(cases)('lenient: $file', async (c) => {
    if (c.lenient === 'error') {
      await expect(run(c, 'lenient')).rejects.toBeInstanceOf(DataError);
      return;
    }
    const ds = await run(c, 'lenient');
    const issue = ds.report.issues.find((i) => i.problem.includes(c.problem));
    expect(issue, JSON.stringify(ds.report.issues)).toBeDefined();
    expect(issue!.action).toBe(c.lenient);
    if (c.where !== null) expect(issue!.where).toContain(c.where);
  });
});
