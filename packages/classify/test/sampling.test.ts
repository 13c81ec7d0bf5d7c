import { Rng } from '@bmc/data';
import { describe, expect, it } from 'vitest';
import { augmentCrop, balancedIndices, dihedral, stratifiedSplit } from '../src/train.js';

describe('class-balanced sampling', () => {
  it('draws each class about equally however imbalanced the data', () => {
    const labels = [...new Array(900).fill(0), ...new Array(90).fill(1), ...new Array(10).fill(2)];
    const idx = balancedIndices(labels, new Rng(1), 3000);
    const counts = [0, 0, 0];
    for (const i of idx) counts[labels[i]!]!++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(100); // binomial sd ~26
    // Within a class, every sample before any repeats: the first 10 draws of class 2 are all distinct.
    const firstRare = idx.filter((i) => labels[i] === 2).slice(0, 10);
    expect(new Set(firstRare).size).toBe(10);
  });
  it('splits stratified, disjoint, complete and reproducible by seed', () => {
    const labels = [...new Array(200).fill(0), ...new Array(100).fill(1)];
    const s = stratifiedSplit(labels, new Rng(7), 0.15, 0.15);
    expect(s.test.filter((i) => labels[i] === 0)).toHaveLength(30);
    expect(s.test.filter((i) => labels[i] === 1)).toHaveLength(15);
    expect(s.val).toHaveLength(45);
    expect(new Set([...s.train, ...s.val, ...s.test]).size).toBe(300);
    expect(stratifiedSplit(labels, new Rng(7), 0.15, 0.15)).toEqual(s);
  });
});

describe('crop augmentation', () => {
  const img = { data: Float32Array.from({ length: 12 }, (_, i) => i), width: 2, height: 2 };
  it('a quarter turn moves pixels as rot90 does; four turns and two mirrors are the identity', () => {
    // Pixels (x, y): a(0,0)=0 b(1,0)=3 c(0,1)=6 d(1,1)=9 (R channel). Clockwise turn: c a / d b.
    const r = dihedral(img, 1, false);
    expect([r.data[0], r.data[3], r.data[6], r.data[9]]).toEqual([6, 0, 9, 3]);
    expect(Array.from(dihedral(dihedral(img, 3, false), 1, false).data)).toEqual(Array.from(img.data));
    expect(Array.from(dihedral(dihedral(img, 0, true), 0, true).data)).toEqual(Array.from(img.data));
  });
  it('geometry only permutes pixels; stain jitter keeps values in range', () => {
    const rng = new Rng(3);
    const g = augmentCrop(rng, img, { geometry: true });
    expect(Array.from(g.data).sort((a, b) => a - b)).toEqual(Array.from(img.data).sort((a, b) => a - b));
    const px = { data: Float32Array.from({ length: 48 }, (_, i) => (i % 7) / 7), width: 4, height: 4 };
    const a = augmentCrop(rng, px);
    expect(a.data.every((v) => v >= 0 && v <= 1)).toBe(true);
  });
});
