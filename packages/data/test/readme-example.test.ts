import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BatchLoader, generateSmear, smearSource, writeSmearDataset } from '../src/index.js';

// The README's generator example, shrunk, so the documented calls keep working.
describe('README example', () => {
  it('in-memory smears through the loader, and written to a folder', async () => {
    const train = new BatchLoader(
      smearSource({ count: 4, seed: 7, width: 96, height: 96, cellSize: [16, 32] }),
      {
        batchSize: 2,
        augment: { size: 96, hflip: 0.5, vflip: 0.5, normalize: true },
        seed: 1,
      },
    );
    let n = 0;
    for await (const b of train.epoch(0)) {
      expect(b.images.length).toBe(2 * 96 * 96 * 3);
      expect(b.labels.every((l) => l.every((v) => v === 0))).toBe(true);
      n++;
    }
    expect(n).toBe(2);
    const one = generateSmear(7, 0, { width: 96, height: 96, cellSize: [16, 32] });
    expect(one.image.data.length).toBe(96 * 96 * 3);
    const dir = await mkdtemp(join(tmpdir(), 'bmc-readme-'));
    try {
      const out = await writeSmearDataset(dir, {
        seed: 7,
        splits: { train: 2, val: 1 },
        categories: 'cell',
        width: 96,
        height: 96,
        cellSize: [16, 32],
      });
      expect(out.train!.images.length).toBe(2);
      expect(out.val!.images[0]!.id).toBe(3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
