import { describe, expect, it } from 'vitest';
import { type AssignerConfig, BACKGROUND, createAssigner } from '../src/index.js';
import { fakePredictions, pyramid, randomBoxes, rng } from './helpers.js';

const types = ['maxiou', 'atss', 'paa', 'ota'] as const;

describe('one interface for all four assigners', () => {
  const { anchors, levelCounts, levelStrides } = pyramid(96, 96);
  const rand = rng(77);
  const gtBoxes = randomBoxes(rand, 5, 96, 96, 50);
  const gtLabels = [0, 1, 2, 1, 0];
  const preds = fakePredictions(rand, anchors, gtBoxes, gtLabels, 3);
  const input = { anchors, levelCounts, levelStrides, gtBoxes, gtLabels, ...preds };
  const n = anchors.length / 4;

  for (const type of types) {
    it(`${type}: same result shape, labels follow gtIndex, deterministic, index cache invisible`, () => {
      const assigner = createAssigner({ type });
      expect(assigner.name).toBe(type);
      expect(assigner.needsPredictions).toBe(type === 'paa' || type === 'ota');
      const r = assigner.assign(input);
      expect(r.gtIndex).toBeInstanceOf(Int32Array);
      expect(r.labels).toBeInstanceOf(Int32Array);
      expect(r.iou).toBeInstanceOf(Float32Array);
      expect(r.gtIndex.length).toBe(n);
      expect(r.numGts).toBe(5);
      expect(r.iouOf).toBe(type === 'paa' || type === 'ota' ? 'prediction' : 'anchor');
      // Positives carry their IoU (> 0 for anchors; a predicted box may have drifted off to 0).
      let positives = 0;
      let bad = 0;
      for (let i = 0; i < n; i++) {
        const j = r.gtIndex[i]!;
        if (j >= 0) positives++;
        if (
          r.labels[i] !== (j >= 0 ? gtLabels[j] : j) ||
          (j < 0 && r.iou[i] !== 0) ||
          (j >= 0 && !(r.iou[i]! > 0 || (r.iouOf === 'prediction' && r.iou[i] === 0)))
        )
          bad++;
      }
      expect(bad).toBe(0);
      expect(r.numPositives).toBe(positives);
      expect(positives).toBeGreaterThan(0);
      // Again, and on a fresh copy of every array (no cached index): identical.
      const again = assigner.assign(input);
      const copy = createAssigner({ type }).assign({
        ...input,
        anchors: Float32Array.from(anchors),
        clsProbs: Float32Array.from(preds.clsProbs),
      });
      expect(Array.from(again.gtIndex)).toEqual(Array.from(r.gtIndex));
      expect(Array.from(copy.gtIndex)).toEqual(Array.from(r.gtIndex));
      expect(Array.from(copy.iou)).toEqual(Array.from(r.iou));
    });

    it(`${type}: no ground truth -> every anchor background`, () => {
      const r = createAssigner({ type }).assign({ ...input, gtBoxes: [], gtLabels: [] });
      expect(r.numPositives).toBe(0);
      expect(r.gtIndex.every((v) => v === BACKGROUND)).toBe(true);
    });
  }

  it('unknown type is rejected', () => {
    expect(() => createAssigner({ type: 'simota' } as unknown as AssignerConfig)).toThrow(
      /unknown type "simota"/,
    );
  });
});

describe('portable: plain typed arrays only', () => {
  it('src imports nothing but @bmc/core (no tfjs, no Node built-ins), and package.json agrees', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const dir = new URL('../src/', import.meta.url);
    const imports = new Set<string>();
    for (const f of readdirSync(dir)) {
      const text = readFileSync(new URL(f, dir), 'utf8');
      for (const m of text.matchAll(/from '([^']+)'/g)) if (!m[1]!.startsWith('./')) imports.add(m[1]!);
    }
    expect([...imports]).toEqual(['@bmc/core']);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(Object.keys(pkg.dependencies)).toEqual(['@bmc/core']);
    expect(pkg.peerDependencies).toBeUndefined();
  });
});
