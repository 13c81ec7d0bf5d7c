import { describe, expect, it } from 'vitest';
import { AtssAssigner, BACKGROUND, meanPlusStd } from '../src/index.js';
import { iouOf, pyramid, randomBoxes, rng } from './helpers.js';

// Two levels. Level 0 (10 px anchors): A0 [0,0,10,10] c(5,5), A1 [10,0,20,10] c(15,5),
// A2 [20,0,30,10] c(25,5), A3 [30,0,40,10] c(35,5). Level 1 (20 px): B0 [0,0,20,20] c(10,10),
// B1 [20,0,40,20] c(30,10). Indices: A0..A3 = 0..3, B0 = 4, B1 = 5.
const anchors = [0, 0, 10, 10, 10, 0, 20, 10, 20, 0, 30, 10, 30, 0, 40, 10, 0, 0, 20, 20, 20, 0, 40, 20];
const levelCounts = [4, 2];
// GT0 [2,0,22,10]: centre (12,5), area 200.
const gt0 = [2, 0, 22, 10];

describe('ATSS by hand', () => {
  it('top-3 per level, threshold mean + std, centre inside', () => {
    // Level 0 distances to (12,5): A1 3, A0 7, A2 13, A3 23 -> A1, A0, A2. Level 1: both B0, B1.
    // IoUs with GT0: A1 100/200 = 0.5; A0 80/220 = 0.363636; A2 20/280 = 0.071429;
    // B0 180/420 = 0.428571; B1 20/580 = 0.034483.
    // mean = 1.398119 / 5 = 0.279624; unbiased var = 0.181248 / 4 = 0.045312; std 0.212866;
    // threshold 0.492490: only A1 (0.5) passes, and its centre (15,5) lies inside GT0.
    expect(meanPlusStd([0.5, 80 / 220, 20 / 280, 180 / 420, 20 / 580])).toBeCloseTo(0.49249, 4);
    const r = new AtssAssigner({ topK: 3 }).assign({ anchors, levelCounts, gtBoxes: gt0, gtLabels: [4] });
    expect(Array.from(r.gtIndex)).toEqual([-1, 0, -1, -1, -1, -1]);
    expect(r.labels[1]).toBe(4);
    expect(r.iou[1]).toBeCloseTo(0.5, 6);
  });

  it('top-2: the threshold rises above every IoU; the paper gives no positive, the rescue gives A1', () => {
    // Candidates A1 0.5, A0 0.363636, B0 0.428571, B1 0.034483: mean 0.331673, squares of the
    // deviations sum to 0.127067, var 0.042356, std 0.205807 -> threshold 0.537480 > 0.5.
    expect(meanPlusStd([0.5, 80 / 220, 180 / 420, 20 / 580])).toBeCloseTo(0.53748, 4);
    const paper = new AtssAssigner({ topK: 2, ensureOnePositive: false });
    expect(paper.assign({ anchors, levelCounts, gtBoxes: gt0, gtLabels: [0] }).numPositives).toBe(0);
    const r = new AtssAssigner({ topK: 2 }).assign({ anchors, levelCounts, gtBoxes: gt0, gtLabels: [0] });
    expect(Array.from(r.gtIndex)).toEqual([-1, 0, -1, -1, -1, -1]);
  });

  it('an anchor claimed by two GTs goes to the higher IoU; the loser is rescued with its next candidate', () => {
    // GT1 [10,0,20,8], centre (15,4): A1 IoU 80/100 = 0.8; A0, A2, B1 0; B0 80/400 = 0.2.
    // mean 0.2, squares 0.36 + 3 * 0.04 + 0 = 0.48, var 0.12, std 0.34641 -> threshold 0.54641: A1.
    // GT0 (top-3) also wants A1 (IoU 0.5): A1 -> GT1 (0.8 > 0.5). GT0's rescue list by IoU, centre
    // inside: A1 (taken, GT1's only positive), B0 centre (10,10) sits on GT0's bottom edge (not
    // inside), A0 0.3636 centre (5,5) inside -> GT0 gets A0.
    const input = { anchors, levelCounts, gtBoxes: [...gt0, 10, 0, 20, 8], gtLabels: [0, 1] };
    const paper = new AtssAssigner({ topK: 3, ensureOnePositive: false }).assign(input);
    expect(Array.from(paper.gtIndex)).toEqual([-1, 1, -1, -1, -1, -1]);
    expect(paper.iou[1]).toBeCloseTo(0.8, 6);
    const r = new AtssAssigner({ topK: 3 }).assign(input);
    expect(Array.from(r.gtIndex)).toEqual([0, 1, -1, -1, -1, -1]);
    expect(r.iou[0]).toBeCloseTo(80 / 220, 6);
  });

  it('no GT -> all background; zero-area GT -> no positive', () => {
    const a = new AtssAssigner();
    expect(Array.from(a.assign({ anchors, levelCounts, gtBoxes: [], gtLabels: [] }).gtIndex)).toEqual(
      new Array(6).fill(BACKGROUND),
    );
    expect(a.assign({ anchors, levelCounts, gtBoxes: [15, 5, 15, 5], gtLabels: [0] }).numPositives).toBe(0);
  });
});

describe("ATSS properties on bmc's N2-N5 anchors", () => {
  const { anchors: boxes, levelCounts: counts } = pyramid(128, 128);
  it('every GT with a candidate (centre inside, IoU > 0) gets at least one positive; positives have centres inside', () => {
    const rand = rng(11);
    for (let s = 0; s < 12; s++) {
      const g = 1 + Math.floor(rand() * 12);
      const gtBoxes = randomBoxes(rand, g, 128, 128);
      const r = new AtssAssigner().assign({
        anchors: boxes,
        levelCounts: counts,
        gtBoxes,
        gtLabels: new Array(g).fill(0),
      });
      const per = new Int32Array(g);
      for (let i = 0; i < r.gtIndex.length; i++) {
        const j = r.gtIndex[i]!;
        if (j < 0) continue;
        per[j]++;
        const cx = (boxes[4 * i]! + boxes[4 * i + 2]!) / 2;
        const cy = (boxes[4 * i + 1]! + boxes[4 * i + 3]!) / 2;
        expect(cx > gtBoxes[4 * j]! && cx < gtBoxes[4 * j + 2]! && cy > gtBoxes[4 * j + 1]!).toBe(true);
        expect(r.iou[i]).toBeCloseTo(iouOf(boxes, i, gtBoxes, j), 5);
      }
      // Every random box here is at least 8 px wide, so some stride-4 anchor centre lies inside it.
      for (let j = 0; j < g; j++) expect(per[j]).toBeGreaterThan(0);
    }
  });
});
