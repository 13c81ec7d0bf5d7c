import { readFileSync } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSmearSlide } from '@bmc/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DZI_FILE, writeDeepZoom } from '../src/slide/deep-zoom.js';
import { openSlide } from '../src/slide/open.js';

/**
 * A scanner or a lab's share may replace a slide at the same path while `bmc serve` or a
 * `bmc worker` keeps running. libvips caches an opened file by its name within a process, so
 * without care the process would go on reading the old slide's pixels.
 */
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bmc-slide-open-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const field = { left: 100, top: 100, width: 320, height: 320 };

describe('a slide replaced at the same path', () => {
  it('is read anew by openSlide and writeDeepZoom in the same process', async () => {
    const path = join(dir, 'slide.tif');
    const a = join(dir, 'a.tif');
    const b = join(dir, 'b.tif');
    await writeSmearSlide(a, { seed: 1, width: 1200, height: 900, fields: [[100, 100]] });
    await writeSmearSlide(b, { seed: 2, width: 1000, height: 800, fields: [[100, 100]] });
    const fromB = await (await openSlide(b)).read((await openSlide(b)).levels[0]!, field);

    await rename(a, path);
    const first = await openSlide(path);
    expect([first.width, first.height]).toEqual([1200, 900]);
    const pixelsA = await first.read(first.levels[0]!, field);
    await writeDeepZoom(path, join(dir, 'a.dz'));

    // The scanner writes the new slide over the old one (same name; the same size would not help).
    await writeSmearSlide(path, { seed: 2, width: 1000, height: 800, fields: [[100, 100]] });
    const second = await openSlide(path);
    expect([second.width, second.height]).toEqual([1000, 800]);
    const pixelsB = await second.read(second.levels[0]!, field);
    expect(Buffer.from(pixelsB.data).equals(Buffer.from(fromB.data))).toBe(true);
    expect(Buffer.from(pixelsB.data).equals(Buffer.from(pixelsA.data))).toBe(false);
    const dz = await writeDeepZoom(path, join(dir, 'b.dz'));
    expect(dz.reused).toBe(false);
    expect(readFileSync(join(dir, 'b.dz', DZI_FILE), 'utf8')).toMatch(/Height="800"\s+Width="1000"/);
  });
});
