import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type Batch,
  BatchLoader,
  DataError,
  datasetSource,
  readCoco,
  type SampleSource,
  smearSource,
  writeSmearDataset,
} from '../src/index.js';

const source = () => smearSource({ count: 10, seed: 1, width: 96, height: 96, cellSize: [14, 30] });
async function collect(it: AsyncIterable<Batch>): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

describe('BatchLoader', () => {
  it('yields stacked batches [B, H, W, 3] covering every sample once per epoch', async () => {
    const loader = new BatchLoader(source(), { batchSize: 4, augment: { size: 64 }, seed: 3 });
    const batches = await collect(loader.epoch(0));
    expect(batches.map((b) => b.batchSize)).toEqual([4, 4, 2]);
    expect(batches[0]!.images.length).toBe(4 * 64 * 64 * 3);
    expect(batches.flatMap((b) => b.indices).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(loader.stats.images).toBe(10);
    expect(loader.stats.imagesPerSecond).toBeGreaterThan(0);
    const dropLast = new BatchLoader(source(), { batchSize: 4, augment: { size: 64 }, dropLast: true });
    expect((await collect(dropLast.epoch(0))).length).toBe(2);
  });

  it('shuffles per epoch with a seed: reproducible, different between epochs', async () => {
    const a = new BatchLoader(source(), { batchSize: 5, augment: { size: 64, hflip: 0.5 }, seed: 9 });
    const b = new BatchLoader(source(), { batchSize: 5, augment: { size: 64, hflip: 0.5 }, seed: 9 });
    expect(a.order(0)).toEqual(b.order(0));
    expect(a.order(1)).not.toEqual(a.order(0));
    const [ba, bb] = [await collect(a.epoch(1)), await collect(b.epoch(1))];
    expect(bb[0]!.images.every((v, i) => v === ba[0]!.images[i])).toBe(true);
    expect(bb[1]!.boxes).toEqual(ba[1]!.boxes);
    const noShuffle = new BatchLoader(source(), { batchSize: 5, augment: { size: 64 }, shuffle: false });
    expect(noShuffle.order(3)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('prefetches: samples of later batches are requested before the consumer asks for them', async () => {
    const inner = source();
    let requested = 0;
    const counting: SampleSource = {
      ...inner,
      load: (i, w, h) => {
        requested++;
        return inner.load(i, w, h);
      },
    };
    const loader = new BatchLoader(counting, { batchSize: 2, augment: { size: 64 }, prefetch: 2 });
    const it = loader.epoch(0);
    await it.next();
    expect(requested).toBeGreaterThanOrEqual(2 * 3);
    await it.return(undefined);
  });

  it('a failing sample surfaces as the error of the batch that needs it', async () => {
    const inner = source();
    const failing: SampleSource = {
      ...inner,
      load: (i, w, h) =>
        i === 3 ? Promise.reject(new DataError('x.png', undefined, 'boom')) : inner.load(i, w, h),
    };
    const loader = new BatchLoader(failing, { batchSize: 2, augment: { size: 64 }, shuffle: false });
    const it = loader.epoch(0);
    await it.next();
    await expect(it.next()).rejects.toThrow('x.png: boom');
  });

  it('datasetSource: sharp decodes and resizes; boxes are scaled with the image', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bmc-loader-'));
    try {
      await writeSmearDataset(dir, {
        seed: 2,
        splits: { train: 3 },
        width: 128,
        height: 96,
        cellSize: [16, 32],
      });
      const ds = await readCoco(join(dir, 'train.json'));
      const loader = new BatchLoader(datasetSource(ds), {
        batchSize: 3,
        augment: { size: 64 },
        shuffle: false,
      });
      const [batch] = await collect(loader.epoch(0));
      expect([batch!.width, batch!.height]).toEqual([64, 64]);
      // 128 x 96 -> 64 x 48 (factor 1/2), padded to 64 x 64.
      expect(batch!.boxes[0]).toEqual(ds.images[0]!.boxes.map((v) => v / 2));
      expect(batch!.ids).toEqual(ds.images.map((i) => i.id));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
