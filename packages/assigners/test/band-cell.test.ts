import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type AssignResult, createAssigner, renderAssignment } from '../src/index.js';
import { BAND, bandBox, IMAGE_SIZE, onBand, pngDataUrl, rasterise } from './band-cell.js';
import { pyramid } from './helpers.js';

/*
 * The published motivation for dynamic assignment: a band cell's box centre lies on background, so
 * assigners that only look at geometry (MaxIoU, ATSS) train anchors that see mostly background, while
 * assigners that use the network's predictions (PAA, OTA) can follow the cell. The "network" here is
 * simulated: a detector part-way through training, whose class probability is 0.85 where the anchor
 * centre is on the cell and 0.1 elsewhere, and whose boxes have moved 70 % of the way from the anchor
 * to the ground truth for anchors centred inside the box.
 *
 * BMC_WRITE_DOCS=1 (`pnpm run render-docs`) also writes the pictures under docs/.
 */
const { anchors, levelCounts, levelStrides } = pyramid(IMAGE_SIZE, IMAGE_SIZE);
const gtBoxes = bandBox();
const n = anchors.length / 4;
const centre = (i: number): [number, number] => [
  (anchors[4 * i]! + anchors[4 * i + 2]!) / 2,
  (anchors[4 * i + 1]! + anchors[4 * i + 3]!) / 2,
];
const clsProbs = new Float32Array(n);
const predBoxes = new Float32Array(4 * n);
for (let i = 0; i < n; i++) {
  const [x, y] = centre(i);
  clsProbs[i] = onBand(x, y) ? 0.85 : 0.1;
  const inside = x > gtBoxes[0] && x < gtBoxes[2] && y > gtBoxes[1] && y < gtBoxes[3];
  for (let k = 0; k < 4; k++) {
    predBoxes[4 * i + k] = inside
      ? anchors[4 * i + k]! + 0.7 * (gtBoxes[k]! - anchors[4 * i + k]!)
      : anchors[4 * i + k]!;
  }
}
const input = { anchors, levelCounts, levelStrides, gtBoxes, gtLabels: [0], clsProbs, predBoxes };

function onCellFraction(r: AssignResult): number {
  let on = 0;
  for (let i = 0; i < n; i++) if (r.gtIndex[i] === 0 && onBand(...centre(i))) on++;
  return on / r.numPositives;
}

describe('band cell: which anchors each assigner trains', () => {
  const results = {
    maxiou: createAssigner({ type: 'maxiou' }).assign(input),
    atss: createAssigner({ type: 'atss' }).assign(input),
    paa: createAssigner({ type: 'paa' }).assign(input),
    ota: createAssigner({ type: 'ota' }).assign(input),
  };
  const fractions = Object.fromEntries(Object.entries(results).map(([k, r]) => [k, onCellFraction(r)]));

  it('the box centre lies on background', () => {
    expect(onBand((gtBoxes[0] + gtBoxes[2]) / 2, (gtBoxes[1] + gtBoxes[3]) / 2)).toBe(false);
    expect(BAND.rInner).toBeGreaterThan(0);
  });

  it('geometric assigners put most positives on background, prediction-aware ones on the cell', () => {
    console.log(
      Object.entries(results)
        .map(
          ([k, r]) =>
            `${k}: ${r.numPositives} positives, ${(100 * fractions[k]!).toFixed(0)} % centred on the cell`,
        )
        .join('\n'),
    );
    for (const r of Object.values(results)) expect(r.numPositives).toBeGreaterThan(0);
    expect(fractions.maxiou).toBeLessThan(0.5);
    expect(fractions.atss).toBeLessThan(0.5);
    expect(fractions.ota).toBeGreaterThan(0.8);
    expect(fractions.paa).toBeGreaterThan(0.8);
  });

  it('renderAssignment draws every positive and the GT box', () => {
    const svg = renderAssignment({
      width: IMAGE_SIZE,
      height: IMAGE_SIZE,
      anchors,
      gtBoxes,
      result: results.ota,
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.match(/<circle /g)?.length).toBe(results.ota.numPositives);
    expect(svg).toContain(`GT 0: ${results.ota.numPositives} positives`);
  });

  it.skipIf(!process.env.BMC_WRITE_DOCS)('writes docs/band-cell-*.svg (only with BMC_WRITE_DOCS=1)', () => {
    const image = pngDataUrl(rasterise(), IMAGE_SIZE, IMAGE_SIZE);
    const dir = new URL('../docs/', import.meta.url);
    mkdirSync(dir, { recursive: true });
    const names = { maxiou: 'MaxIoU', atss: 'ATSS', paa: 'PAA', ota: 'OTA' } as const;
    for (const [k, r] of Object.entries(results) as Array<[keyof typeof names, AssignResult]>) {
      const title = `${names[k]}: ${(100 * fractions[k]!).toFixed(0)} % of positives on the cell`;
      const svg = renderAssignment({
        width: IMAGE_SIZE,
        height: IMAGE_SIZE,
        anchors,
        gtBoxes,
        result: r,
        image,
        title,
      });
      const file = new URL(`band-cell-${k}.svg`, dir);
      writeFileSync(new URL(`band-cell-${k}.svg.tmp`, dir), svg);
      renameSync(new URL(`band-cell-${k}.svg.tmp`, dir), file);
    }
  });
});
