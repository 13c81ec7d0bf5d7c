import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { demo, setUpEngine } from '../src/commands/pipeline.js';
import { loadConfig } from '../src/config/load.js';
import { smallSet } from './small-config.js';

const dir = mkdtempSync(join(tmpdir(), 'bmc-classify-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// `pnpm demo` ends with the differential count of its unseen smears (detector + cell-type
// classifier); here on a CI-sized run: 128 px smears, 1 epoch of the detector, 12 classifier smears.
describe('demo with the second stage', () => {
  it('trains the classifier, counts the differential on unseen images and reports the confusion matrix', async () => {
    const set = [...smallSet(128, 8, 4), 'optim.epochs=1', 'optim.warmupIters=2', 'run.evalEvery=1'];
    await setUpEngine(loadConfig({ preset: 'tiny', set }).run, () => {});
    const lines: string[] = [];
    const { root } = await demo({
      runsDir: dir,
      set,
      unseen: 3,
      classifierImages: 12,
      progress: false,
      log: (l) => lines.push(l),
    });
    const out = lines.join('\n');
    expect(out).toMatch(/cell-type classifier: \d+ cells of 12 training smears/);
    expect(out).toMatch(/differential on 3 unseen images \(probability >= 0.5\), counted vs drawn/);
    expect(existsSync(join(root, 'classifier.onnx'))).toBe(true);

    const result = JSON.parse(readFileSync(join(root, 'demo-result.json'), 'utf8'));
    const names = ['blast', 'lymphocyte', 'band', 'segmented', 'eosinophil', 'plasma'];
    expect(Object.keys(result.classifier.test.f1)).toEqual(names);
    // The differential adds up: every counted cell is one type or unclassified, and they are the cells bmc detect counted.
    const counted = result.differential.counted as Record<string, number>;
    expect(Object.keys(counted)).toEqual([...names, 'unclassified']);
    const total = Object.values(counted).reduce((a, b) => a + b, 0);
    expect(total).toBe(result.detect.cells);
    // What was drawn on the unseen images is the generator's truth: some cells of several types.
    expect(Object.values(result.differential.drawn as Record<string, number>).length).toBeGreaterThan(1);
    // Cell by cell against the generator's truth: counts that can only shrink along the way.
    const a = result.differential.cellByCell;
    const drawnTotal = Object.values(result.differential.drawn as Record<string, number>).reduce(
      (x, y) => x + y,
      0,
    );
    expect(a.known).toBe(drawnTotal);
    // (The 1-epoch CI detector finds few cells; matching itself is tested in classify-agreement.test.ts.)
    expect(a.matched).toBeLessThanOrEqual(Math.min(a.known, total));
    expect(a.typed).toBeLessThanOrEqual(a.matched);
    expect(a.agree).toBeLessThanOrEqual(a.typed);
    expect(out).toMatch(/cell by cell: \d+ of the \d+ drawn cells detected/);
    expect(result.detect.classifyMsPerImage).toBeGreaterThan(0);
    expect(result.detect.classifyMsPerImage).toBeLessThan(result.detect.msPerImage);

    const report = readFileSync(join(root, 'report', 'report.md'), 'utf8');
    expect(report).toContain('## Cell types (second stage: crop classifier)');
    expect(report).toContain('![cell-type confusion matrix](classifier-confusion.svg)');
    expect(report).toMatch(/\| blast \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \|/);
    expect(report).toMatch(/Differential count on 3 unseen images/);
    expect(report).toMatch(/Cell by cell \(each detected cell matched to a known one at IoU >= 0.5\)/);
    expect(readFileSync(join(root, 'report', 'classifier-confusion.svg'), 'utf8')).toMatch(/^<svg/);
  }, 900_000);
});
