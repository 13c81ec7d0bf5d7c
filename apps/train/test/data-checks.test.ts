import { InputError } from '@bmc/core';
import { type Dataset, makeImage } from '@bmc/data';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { autoSplit, checkSplits, describeAutoSplit } from '../src/train/data-checks.js';

const dataset = (n: number, boxes = true, issues: Dataset['report']['issues'] = []): Dataset => ({
  categories: [{ id: 1, name: 'cell' }],
  images: Array.from({ length: n }, (_, i) =>
    makeImage({
      id: i + 1,
      file: `/d/${i}.png`,
      width: 10,
      height: 10,
      boxes: boxes ? [1, 1, 5, 5] : [],
      labels: boxes ? [0] : [],
    }),
  ),
  report: { issues },
});
const split = (name: string, ds: Dataset) => ({ name, source: { length: ds.images.length }, dataset: ds });
const coco = loadConfig({ preset: 'tiny', overrides: { data: { format: 'coco', path: '/d/all.json' } } });

describe('a COCO file given alone is split (issue 22)', () => {
  it('into disjoint train / val / test parts, seeded, covering every image', () => {
    const parts = autoSplit(dataset(100), coco.data.autoSplit);
    const ids = (ds: Dataset) => ds.images.map((im) => im.id);
    expect([ids(parts.train).length, ids(parts.val).length, ids(parts.test).length]).toEqual([70, 15, 15]);
    const all = [...ids(parts.train), ...ids(parts.val), ...ids(parts.test)];
    expect(new Set(all).size).toBe(100);
    // Same seed, same split; another seed, another one.
    expect(ids(autoSplit(dataset(100), coco.data.autoSplit).val)).toEqual(ids(parts.val));
    expect(ids(autoSplit(dataset(100), { ...coco.data.autoSplit, seed: 5 }).val)).not.toEqual(ids(parts.val));
  });

  it('is stated with its seed and sizes, and only when the file is alone', () => {
    const said: string[] = [];
    const events: Record<string, unknown>[] = [];
    const io = {
      say: (s: string) => said.push(s),
      log: { write: (e: Record<string, unknown>) => events.push(e) },
    };
    const parts = autoSplit(dataset(20), coco.data.autoSplit);
    checkSplits(
      { train: split('train', parts.train), val: split('val', parts.val), test: split('test', parts.test) },
      coco,
      io,
    );
    expect(said[0]).toMatch(
      /all\.json was given alone: split at random \(seed 0, val 0\.15, test 0\.15\) into 14 training, 3 validation and 3 test images/,
    );
    expect(events[0]).toMatchObject({ event: 'data-split', seed: 0 });
    expect(
      describeAutoSplit({ ...coco.data, valPath: '/d/val.json' }, { train: 1, val: 1, test: 1 }),
    ).toBeUndefined();
  });
});

describe('training data checks (issue 22)', () => {
  const io = () => {
    const said: string[] = [];
    const events: Record<string, unknown>[] = [];
    return {
      said,
      events,
      io: {
        say: (s: string) => said.push(s),
        log: { write: (e: Record<string, unknown>) => events.push(e) },
      },
    };
  };
  const voc = loadConfig({ preset: 'tiny', overrides: { data: { format: 'voc', path: '/d/voc' } } });

  it('warns once per dataset, with counts, about dropped and clipped boxes (stdout and JSONL)', () => {
    const issue = (action: 'dropped-box' | 'clipped' | 'dropped-image') => ({
      file: '/d/a.xml',
      where: 'object 1',
      problem: 'x',
      action,
    });
    const ds = dataset(4, true, [
      issue('dropped-box'),
      issue('dropped-box'),
      issue('clipped'),
      issue('dropped-image'),
    ]);
    const t = io();
    // val and test share one dataset object: one warning for it.
    checkSplits(
      { train: split('train', ds), val: split('val', dataset(2)), test: split('test', dataset(2)) },
      voc,
      t.io,
    );
    expect(t.said).toEqual([
      expect.stringMatching(
        /^warning: train data \(\/d\/voc\): 2 box\(es\) dropped, 1 clipped, 1 image\(s\) dropped/,
      ),
    ]);
    expect(t.events).toEqual([
      expect.objectContaining({
        event: 'data-problems',
        split: 'train',
        droppedBoxes: 2,
        clippedBoxes: 1,
        droppedImages: 1,
      }),
    ]);
  });

  it('refuses an empty split or training data without boxes, naming the split and the path (bad input)', () => {
    const t = io();
    const empty = () =>
      checkSplits(
        { train: split('train', dataset(3)), val: split('val', dataset(0)), test: split('test', dataset(2)) },
        voc,
        t.io,
      );
    expect(empty).toThrow(InputError);
    expect(empty).toThrow('the val split of /d/voc has no images');
    expect(() =>
      checkSplits(
        {
          train: split('train', dataset(3, false)),
          val: split('val', dataset(2)),
          test: split('test', dataset(2)),
        },
        voc,
        t.io,
      ),
    ).toThrow('the train split of /d/voc has no boxes');
  });
});
