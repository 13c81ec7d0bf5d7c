import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerInferCommands } from '../src/commands.js';
import { detectCommand } from '../src/detect-command.js';
import { expandInputs } from '../src/inputs.js';
import { type Detector, loadDetector } from '../src/model.js';
import { TINY_MODEL, writeSmear } from './helpers.js';

describe('bmc detect on a folder with one corrupt image', () => {
  let dir: string;
  let images: string;
  let detector: Detector;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bmc-infer-cli-'));
    images = join(dir, 'images');
    await writeSmear(images, 'a.png', 1);
    await writeSmear(join(images, 'sub'), 'b.png', 2, 400, 300);
    await writeSmear(images, 'c.png', 3);
    // Not an image at all, but named like one: the batch must report it and go on.
    await writeFile(join(images, 'corrupt.png'), Buffer.from('this is not a PNG file, just text'));
    await writeFile(join(images, 'notes.txt'), 'ignored: not an image extension');
    detector = await loadDetector(TINY_MODEL, { threads: 1 });
  });
  afterAll(async () => {
    await detector?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('processes the rest, reports the corrupt one, writes COCO results, counts, annotations and crops', async () => {
    const lines: string[] = [];
    const out = join(dir, 'out');
    const res = await detectCommand({
      inputs: [images],
      model: detector,
      out,
      crops: true,
      progress: false,
      log: (l) => lines.push(l),
    });

    expect(res.processed.map((p) => p.file.slice(images.length + 1))).toEqual([
      'a.png',
      'c.png',
      'sub/b.png',
    ]);
    expect(res.failed).toHaveLength(1);
    expect(res.failed[0]!.file).toBe(join(images, 'corrupt.png'));
    expect(res.failed[0]!.error).toMatch(/cannot decode image/);
    expect(
      lines.some((l) => l.startsWith(`skipped ${join(images, 'corrupt.png')}: cannot decode image`)),
    ).toBe(true);

    const results = JSON.parse(await readFile(res.outputs.results, 'utf8'));
    const coco = JSON.parse(await readFile(res.outputs.images, 'utf8'));
    expect(coco.categories).toEqual([
      { id: 1, name: 'cell' },
      { id: 2, name: 'dark_cell' },
    ]);
    expect(coco.images.map((i: { file_name: string }) => i.file_name)).toEqual([
      'a.png',
      'c.png',
      'sub/b.png',
    ]);
    const ids = new Set(coco.images.map((i: { id: number }) => i.id));
    const total = res.processed.reduce((s, p) => s + p.count, 0);
    expect(total).toBeGreaterThan(10);
    expect(results).toHaveLength(total);
    for (const r of results) {
      expect(ids.has(r.image_id)).toBe(true);
      expect([1, 2]).toContain(r.category_id);
      const img = coco.images.find((i: { id: number }) => i.id === r.image_id);
      const [x, y, w, h] = r.bbox;
      expect(w).toBeGreaterThan(0);
      expect(h).toBeGreaterThan(0);
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x + w).toBeLessThanOrEqual(img.width + 0.01);
      expect(y + h).toBeLessThanOrEqual(img.height + 0.01);
    }

    // counts.csv agrees with results.json per image and per class.
    const csv = (await readFile(res.outputs.counts, 'utf8')).trim().split('\n');
    expect(csv[0]).toBe('file,width,height,count,cell,dark_cell');
    expect(csv).toHaveLength(4);
    for (const row of csv.slice(1)) {
      const [file, w, h, count, cell, dark] = row.split(',');
      const img = coco.images.find((i: { file_name: string }) => i.file_name === file);
      expect([Number(w), Number(h)]).toEqual([img.width, img.height]);
      const mine = results.filter((r: { image_id: number }) => r.image_id === img.id);
      expect(Number(count)).toBe(mine.length);
      expect(Number(cell)).toBe(mine.filter((r: { category_id: number }) => r.category_id === 1).length);
      expect(Number(dark)).toBe(mine.filter((r: { category_id: number }) => r.category_id === 2).length);
    }
    expect(await readFile(res.outputs.failed!, 'utf8')).toMatch(
      /^file,error\ncorrupt.png,.*cannot decode image/,
    );

    expect((await readdir(join(out, 'annotated'))).sort()).toEqual(['a.png', 'b.png', 'c.png']);
    let crops = 0;
    for (const d of await readdir(join(out, 'crops'))) crops += (await readdir(join(out, 'crops', d))).length;
    expect(crops).toBe(total);
  });

  it('expands globs and files; a pattern with no match is an error naming it', async () => {
    const files = await expandInputs([join(images, '*.png'), join(images, 'sub', 'b.png')]);
    expect(files.map((f) => f.slice(images.length + 1))).toEqual([
      'a.png',
      'c.png',
      'corrupt.png',
      'sub/b.png',
    ]);
    await expect(expandInputs([join(images, '*.jpg')])).rejects.toThrow(/\*\.jpg: no images found/);
    await expect(expandInputs([join(dir, 'missing')])).rejects.toThrow(/missing: no such file or folder/);
  });

  it('registers `detect`, `serve` and `worker` on a commander program and runs detect from argv', async () => {
    const program = registerInferCommands(new Command('bmc').exitOverride());
    expect(program.commands.map((c) => c.name())).toEqual(['detect', 'serve', 'worker']);
    const out = join(dir, 'argv-out');
    const stderr = process.stderr.write;
    process.stderr.write = () => true;
    try {
      await program.parseAsync(
        [
          'detect',
          join(images, 'a.png'),
          '-m',
          TINY_MODEL,
          '-o',
          out,
          '--no-annotate',
          '--threads',
          '1',
          '--score',
          '0.7',
        ],
        {
          from: 'user',
        },
      );
    } finally {
      process.stderr.write = stderr;
    }
    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8'));
    expect(results.length).toBeGreaterThan(0);
    expect(results.every((r: { score: number }) => r.score > 0.7)).toBe(true);
    expect(existsSync(join(out, 'annotated'))).toBe(false);
    await expect(
      program.parseAsync(['detect', 'x.png', '-m', TINY_MODEL, '--score', '2'], { from: 'user' }),
    ).rejects.toThrow(/--score/);
  });
});
