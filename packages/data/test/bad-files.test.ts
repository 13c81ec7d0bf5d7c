import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '@bmc/core';
import { describe, expect, it } from 'vitest';
import {
  BatchLoader,
  DataError,
  datasetSource,
  encodePng,
  fsErrorText,
  makeImage,
  probeImage,
  readCoco,
  regularFileProblem,
  type SampleSource,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'bmc-bad-files-'));

async function png(name: string, w = 24, h = 16): Promise<string> {
  const data = new Float32Array(w * h * 3).map((_, i) => (i % 7) / 7);
  const file = join(dir, name);
  writeFileSync(file, await encodePng({ data, width: w, height: h }));
  return file;
}

/** A PNG cut short: its header (and size) intact, its pixel data missing. */
async function truncatedPng(name: string): Promise<string> {
  const whole = readFileSync(await png(`${name}.whole.png`, 64, 64));
  const file = join(dir, name);
  writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)));
  return file;
}

describe('image files checked before and while decoding (issue 22)', () => {
  it('a truncated image passes the header check and fails the full decode, naming the file', async () => {
    const file = await truncatedPng('cut.png');
    expect(await probeImage(file, 'header')).toEqual({ width: 64, height: 64 });
    await expect(probeImage(file, 'full')).rejects.toThrow(DataError);
    await expect(probeImage(file, 'full')).rejects.toThrow(new RegExp(`${file}: cannot decode image`));
    expect(await probeImage(await png('ok.png'), 'full')).toEqual({ width: 24, height: 16 });
  });

  it('a FIFO named .png is refused without opening it (opening would block)', async () => {
    const fifo = join(dir, 'pipe.png');
    execFileSync('mkfifo', [fifo]);
    expect(await regularFileProblem(fifo)).toBe('a FIFO (named pipe), not an image file');
    await expect(probeImage(fifo, 'full')).rejects.toThrow(/pipe\.png: a FIFO/);
    expect(await regularFileProblem('/dev/null')).toBe('a device, not an image file');
    expect(await regularFileProblem(dir)).toBe('a folder, not an image file');
  }, 5_000);

  it('a symlink loop is reported as one, not as "not found"', async () => {
    const a = join(dir, 'loop-a.png');
    const b = join(dir, 'loop-b.png');
    symlinkSync(b, a);
    symlinkSync(a, b);
    expect(await regularFileProblem(a)).toMatch(/symlink loop/);
    expect(await regularFileProblem(join(dir, 'absent.png'))).toBe('not found');
    expect(fsErrorText(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('permission denied');
  });

  it('COCO file_name outside the dataset folder is refused unless allowed, and says how to allow it', async () => {
    const inner = mkdtempSync(join(dir, 'coco-'));
    const outside = await png('outside.png');
    await png('inside-parent.png'); // beside `inner`: reached from it through ..
    const img = (id: number, file_name: string) => ({ id, file_name, width: 24, height: 16 });
    const json = join(inner, 'train.json');
    writeFileSync(
      json,
      JSON.stringify({
        images: [img(1, outside), img(2, '../inside-parent.png')],
        annotations: [],
        categories: [{ id: 1, name: 'cell' }],
      }),
    );
    const lenient = await readCoco(json, { policy: 'lenient' });
    expect(lenient.images).toHaveLength(0);
    expect(lenient.report.issues.map((i) => i.problem)).toEqual([
      expect.stringMatching(/outside the dataset folder .*--allow-outside-root/),
      expect.stringMatching(/"\.\.\/inside-parent\.png" resolves to .*outside the dataset folder/),
    ]);
    await expect(readCoco(json, { policy: 'strict' })).rejects.toThrow(/image id 1: file_name .* outside/);
    expect((await readCoco(json, { policy: 'strict', allowOutsideRoot: true })).images).toHaveLength(2);
  });
});

describe('the batch loader skips samples that fail to decode (issue 22)', () => {
  /** 10 samples; those in `bad` reject with a DataError, like a corrupt image would. */
  const source = (bad: Set<number>, error?: Error): SampleSource => ({
    length: 10,
    size: () => ({ width: 8, height: 8 }),
    async load(i) {
      if (bad.has(i))
        throw error ?? new DataError(`/data/img${i}.jpg`, undefined, 'cannot decode image: truncated');
      return {
        image: { data: new Float32Array(8 * 8 * 3), width: 8, height: 8 },
        boxes: new Float32Array(0),
        labels: new Int32Array(0),
        id: i,
      };
    },
  });
  const options = { batchSize: 4, augment: { size: 8 }, shuffle: false } as const;

  it('leaves a bad sample out of its batch, reports it once across epochs, and goes on', async () => {
    const told: string[] = [];
    const loader = new BatchLoader(source(new Set([1])), {
      ...options,
      maxBadShare: 0.1,
      onBadSample: (b, n) => told.push(`${n}: ${b.file} ${b.problem}`),
    });
    for (const epoch of [0, 1]) {
      const batches = [];
      for await (const b of loader.epoch(epoch)) batches.push(b.indices);
      expect(batches).toEqual([
        [0, 2, 3],
        [4, 5, 6, 7],
        [8, 9],
      ]);
    }
    expect(told).toEqual(['1: /data/img1.jpg /data/img1.jpg: cannot decode image: truncated']);
    expect(loader.badSamples.map((b) => b.index)).toEqual([1]);
  });

  it('stops with an InputError past the allowed share, naming the setting and the file', async () => {
    const loader = new BatchLoader(source(new Set([1, 5])), {
      ...options,
      maxBadShare: 0.1,
      maxBadShareName: 'data.maxBadImageShare',
    });
    const run = async () => {
      for await (const _ of loader.epoch(0));
    };
    const err = await run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(() => {
      throw err;
    }).toThrow(
      /2 of 10 images failed to load, more than the allowed share 0\.1 \(data\.maxBadImageShare\); the latest: \/data\/img5\.jpg/,
    );
  });

  it('without maxBadShare, or for an error that is not bad input, the first failure ends the epoch', async () => {
    const strict = new BatchLoader(source(new Set([1])), options);
    await expect(
      (async () => {
        for await (const _ of strict.epoch(0));
      })(),
    ).rejects.toThrow(DataError);
    const bug = new BatchLoader(source(new Set([1]), new RangeError('a bug')), {
      ...options,
      maxBadShare: 1,
    });
    await expect(
      (async () => {
        for await (const _ of bug.epoch(0));
      })(),
    ).rejects.toThrow('a bug');
  });

  it('a real truncated image in a dataset is skipped by datasetSource + the loader', async () => {
    const good = await png('good.png', 64, 64);
    const cut = await truncatedPng('cut2.png');
    const ds = {
      categories: [{ id: 1, name: 'cell' }],
      images: [good, cut, good].map((file, i) =>
        makeImage({ id: i + 1, file, width: 64, height: 64, boxes: [], labels: [] }),
      ),
      report: { issues: [] },
    };
    const bad: string[] = [];
    const loader = new BatchLoader(datasetSource(ds), {
      batchSize: 3,
      augment: { size: 32 },
      shuffle: false,
      maxBadShare: 0.5,
      onBadSample: (b) => bad.push(b.file ?? ''),
    });
    const ids = [];
    for await (const b of loader.epoch(0)) ids.push(...b.ids);
    expect(ids).toEqual([1, 3]);
    expect(bad).toEqual([cut]);
  });
});
