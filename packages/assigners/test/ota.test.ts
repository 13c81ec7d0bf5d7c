import { generalizedBoxIou } from '@bmc/core';
import { describe, expect, it } from 'vitest';
import { dynamicK, OtaAssigner, sinkhorn } from '../src/index.js';
import { fakePredictions, pyramid, randomBoxes, rng } from './helpers.js';

// Focal terms written out here, independent of src/focal-cost.ts (alpha 0.25, gamma 2).
const pos = (p: number) => -0.25 * (1 - p) ** 2 * Math.log(p);
const neg = (p: number) => -0.75 * p ** 2 * Math.log(1 - p);

// One level, stride 10: A0 [0,0,10,10] c(5,5), A1 [10,0,20,10] c(15,5), A2 [20,0,30,10] c(25,5).
// GT [0,0,30,10], centre (15,5), one class. Predicted boxes: A0 -> [0,0,10,10] (IoU = GIoU = 1/3,
// the enclosing box is the GT), A1 -> the GT (IoU 1), A2 -> [20,0,30,10] (1/3).
const anchors = [0, 0, 10, 10, 10, 0, 20, 10, 20, 0, 30, 10];
const gt = [0, 0, 30, 10];
const predBoxes = [0, 0, 10, 10, 0, 0, 30, 10, 20, 0, 30, 10];
const base = { anchors, levelCounts: [3], levelStrides: [10], gtBoxes: gt, gtLabels: [0], predBoxes };

describe('OTA by hand', () => {
  it('dynamic k: floor of the summed top-q IoUs, at least 1', () => {
    expect(dynamicK([1 / 3, 1, 1 / 3], 20)).toBe(1); // 1.667 -> 1
    expect(dynamicK([0.9, 0.8, 0.7, 0.2], 20)).toBe(2); // 2.6 -> 2
    expect(dynamicK([0.9, 0.8, 0.7, 0.2], 2)).toBe(1); // 1.7 -> 1
    expect(dynamicK([0.1], 20)).toBe(1);
  });

  it('k = 1: the GT takes the anchor where (its cost - background cost) is lowest', () => {
    // p = 0.5, 0.8, 0.2. fg cost = pos(p) + 1.5 (1 - GIoU); bg cost = neg(p).
    // A0: 0.043322 + 1.0 = 1.043322 vs 0.129965 -> +0.913357
    // A1: 0.002231 + 0.0 = 0.002231 vs 0.772530 -> -0.770299  <- lowest: A1 positive
    // A2: 0.257510 + 1.0 = 1.257510 vs 0.006694 -> +1.250816
    expect(pos(0.5) + 1.0 - neg(0.5)).toBeCloseTo(0.913357, 5);
    expect(pos(0.8) - neg(0.8)).toBeCloseTo(-0.770299, 5);
    const { result, transport } = new OtaAssigner().assignDetailed({ ...base, clsProbs: [0.5, 0.8, 0.2] });
    expect(Array.from(result.gtIndex)).toEqual([-1, 0, -1]);
    expect(result.iou[1]).toBe(1);
    expect(result.weights![1]).toBeCloseTo(1, 6);
    expect(Array.from(transport!.supply)).toEqual([1, 2]);
    expect(transport!.cost[1]).toBeCloseTo(pos(0.8), 6);
    expect(transport!.cost[3]).toBeCloseTo(neg(0.5), 6);
  });

  it('the centre region decides who may be positive', () => {
    // p = 0.95, 0.3, 0.2. A0: pos(0.95) + 1 - neg(0.95) = 0.000032 + 1 - 2.027737 = -1.027705;
    // A1: 0.147487 - 0.024076 = +0.123411. Radius 2.5 strides (25 px) covers all three: A0 wins.
    // Radius 0.5 strides: region (10, 20) in x, only A1's centre (15) is inside: A1.
    expect(pos(0.95) + 1 - neg(0.95)).toBeCloseTo(-1.027705, 5);
    const clsProbs = [0.95, 0.3, 0.2];
    expect(Array.from(new OtaAssigner().assign({ ...base, clsProbs }).gtIndex)).toEqual([0, -1, -1]);
    expect(Array.from(new OtaAssigner({ centreRadius: 0.5 }).assign({ ...base, clsProbs }).gtIndex)).toEqual([
      -1, 0, -1,
    ]);
  });

  it('a NaN in a prediction row it reads is reported with the row', () => {
    expect(() => new OtaAssigner().assign({ ...base, clsProbs: [0.5, Number.NaN, 0.2] })).toThrow(
      /OTA: clsProbs: non-finite value NaN at row 1/,
    );
    expect(() =>
      new OtaAssigner().assign({
        ...base,
        clsProbs: [0.5, 0.5, 0.5],
        predBoxes: [0, 0, 1, Number.POSITIVE_INFINITY, 0, 0, 1, 1, 0, 0, 1, 1],
      }),
    ).toThrow(/predBoxes: non-finite value Infinity at row 0, column 3/);
  });

  it('rescaling rows: a GT spreading its unit over equal anchors keeps them (official); without it, none', () => {
    // Three copies of A1 with identical predictions and k fixed to 1: all costs in a row are equal,
    // so the GT sends 1/3 to each copy and the background (supply 2) 2/3 to each. Raw plan: 2/3 beats
    // 1/3, every copy is background. Rescaled by row maxima (1/3 and 2/3; no anchor lies outside the
    // candidates): 1 against 1, and ties go to the GT: all three positive, as the official code.
    // Without rescaling, ensureOnePositive gives the GT its first-ranked copy (equal plans: lowest index).
    const copies = {
      ...base,
      anchors: [...anchors.slice(4, 8), ...anchors.slice(4, 8), ...anchors.slice(4, 8)],
    };
    const input = {
      ...copies,
      predBoxes: [...gt, ...gt, ...gt],
      clsProbs: [0.5, 0.5, 0.5],
      levelStrides: [10],
    };
    const official = new OtaAssigner({ fixedK: 1 }).assign(input);
    expect(Array.from(official.gtIndex)).toEqual([0, 0, 0]);
    const raw = new OtaAssigner({ fixedK: 1, rescale: false, ensureOnePositive: false }).assign(input);
    expect(raw.numPositives).toBe(0);
    const rescued = new OtaAssigner({ fixedK: 1, rescale: false }).assign(input);
    expect(Array.from(rescued.gtIndex)).toEqual([0, -1, -1]);
  });

  it('no GT, and a zero-area GT, give no positive', () => {
    const clsProbs = [0.5, 0.5, 0.5];
    expect(new OtaAssigner().assign({ ...base, gtBoxes: [], gtLabels: [], clsProbs }).numPositives).toBe(0);
    expect(new OtaAssigner().assign({ ...base, gtBoxes: [15, 5, 15, 5], clsProbs }).numPositives).toBe(0);
  });
});

describe('OTA properties', () => {
  it('k = 1 on tiny problems equals the brute-force optimal assignment', () => {
    // Five anchors A_i = [10i, 0, 10i + 10, 10]; three GTs that all contain every anchor centre,
    // two classes, random probabilities and predicted boxes. Brute force: every ordered choice of
    // three distinct anchors, total = sum of fg costs + background cost of the other two.
    const rand = rng(7);
    const regWeight = 4;
    const anchorsT = Array.from({ length: 5 }, (_, i) => [10 * i, 0, 10 * i + 10, 10]).flat();
    let compared = 0;
    for (let t = 0; t < 400 && compared < 12; t++) {
      const gtBoxes = Array.from({ length: 3 }, () => [
        rand() * 4,
        rand() * 4,
        46 + rand() * 4,
        6 + rand() * 4,
      ]).flat();
      const gtLabels = [0, 1, Math.floor(rand() * 2)];
      const clsProbs = Array.from({ length: 10 }, () => 0.02 + 0.96 * rand());
      const pred = Array.from({ length: 5 }, (_, i) => {
        const cx = 10 * i + 5 + (rand() - 0.5) * 20;
        const w = 10 + rand() * 40;
        return [cx - w / 2, rand() * 3, cx + w / 2, 7 + rand() * 3];
      }).flat();
      const giou = generalizedBoxIou(pred, gtBoxes).data; // [5, 3]
      const fg = (j: number, i: number) => {
        let s = 0;
        for (let c = 0; c < 2; c++) {
          const p = clsProbs[2 * i + c]!;
          s += c === gtLabels[j] ? pos(p) : neg(p);
        }
        return s + regWeight * (1 - giou[3 * i + j]!);
      };
      const bg = (i: number) => neg(clsProbs[2 * i]!) + neg(clsProbs[2 * i + 1]!);
      const totals: Array<{ cost: number; pick: number[] }> = [];
      for (let a = 0; a < 5; a++)
        for (let b = 0; b < 5; b++)
          for (let c = 0; c < 5; c++) {
            if (a === b || a === c || b === c) continue;
            let cost = fg(0, a) + fg(1, b) + fg(2, c);
            for (let i = 0; i < 5; i++) if (i !== a && i !== b && i !== c) cost += bg(i);
            totals.push({ cost, pick: [a, b, c] });
          }
      totals.sort((x, y) => x.cost - y.cost);
      // Entropic OT (eps 0.1) approximates the LP optimum; compare where the runner-up is 5 eps behind.
      if (totals[1]!.cost - totals[0]!.cost < 0.5) continue;
      const r = new OtaAssigner({ fixedK: 1, centreRadius: 100, regWeight }).assign({
        anchors: anchorsT,
        levelCounts: [5],
        levelStrides: [10],
        gtBoxes,
        gtLabels,
        clsProbs,
        predBoxes: pred,
      });
      const expected = new Array(5).fill(-1);
      totals[0]!.pick.forEach((i, j) => {
        expected[i] = j;
      });
      expect(Array.from(r.gtIndex)).toEqual(expected);
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(10);
  });

  const { anchors: boxes, levelCounts, levelStrides } = pyramid(128, 128);
  it('plan marginals match supply and demand within 1e-4; every GT with a valid anchor gets a positive', () => {
    const rand = rng(5);
    for (let s = 0; s < 6; s++) {
      const g = 2 + Math.floor(rand() * 10);
      const gtBoxes = randomBoxes(rand, g, 128, 128);
      const gtLabels = Array.from({ length: g }, (_, j) => j % 4);
      const preds = fakePredictions(rand, boxes, gtBoxes, gtLabels, 4);
      const { result, transport } = new OtaAssigner().assignDetailed({
        anchors: boxes,
        levelCounts,
        levelStrides,
        gtBoxes,
        gtLabels,
        ...preds,
      });
      const t = transport!;
      const rowSum = new Float64Array(t.rows);
      const colSum = new Float64Array(t.cols);
      t.plan.forEach((v, k) => {
        rowSum[t.pairRow[k]!] += v;
        colSum[t.pairCol[k]!] += v;
      });
      let rowErr = 0;
      let colErr = 0;
      for (let r = 0; r < t.rows; r++) rowErr = Math.max(rowErr, Math.abs(rowSum[r]! - t.supply[r]!));
      for (let c = 0; c < t.cols; c++) colErr = Math.max(colErr, Math.abs(colSum[c]! - 1));
      expect(rowErr).toBeLessThan(1e-4);
      expect(colErr).toBeLessThan(1e-4);
      const per = new Int32Array(g);
      for (const j of result.gtIndex) if (j >= 0) per[j]++;
      for (const j of t.rowGt) expect(per[j]).toBeGreaterThan(0);
      // Positives only where the anchor was a valid candidate of its GT.
      const valid = new Set<number>();
      for (let k = 0; k < t.pairRow.length - t.cols; k++)
        valid.add(t.rowGt[t.pairRow[k]!]! * 1e6 + t.colAnchor[t.pairCol[k]!]!);
      let outside = 0;
      result.gtIndex.forEach((j, i) => {
        if (j >= 0 && !valid.has(j * 1e6 + i)) outside++;
      });
      expect(outside).toBe(0);
    }
  });

  it('the candidate restriction is exact: equals the dense [G + 1, N] problem with the 1e6 penalty', () => {
    // Dense reference as the official code builds it: every (GT, anchor) pair, cost + 1e6 where the
    // anchor is not a valid candidate, background supply N - sum k over all N anchors, log-space
    // Sinkhorn, rows rescaled by their maxima, argmax per anchor.
    const { anchors: a64, levelCounts: lc, levelStrides: ls } = pyramid(64, 64);
    const rand = rng(31);
    const gtBoxes = randomBoxes(rand, 3, 64, 64, 40);
    const gtLabels = [0, 1, 0];
    const preds = fakePredictions(rand, a64, gtBoxes, gtLabels, 2);
    const input = { anchors: a64, levelCounts: lc, levelStrides: ls, gtBoxes, gtLabels, ...preds };
    const { result, transport } = new OtaAssigner().assignDetailed(input);
    const t = transport!;
    const n = a64.length / 4;
    const g = 3;
    const valid = new Map<number, number>(); // j * n + i -> sparse pair cost
    for (let k = 0; k < t.pairRow.length - t.cols; k++) {
      valid.set(t.rowGt[t.pairRow[k]!]! * n + t.colAnchor[t.pairCol[k]!]!, t.cost[k]!);
    }
    const pr: number[] = [];
    const pc: number[] = [];
    const cost: number[] = [];
    const giou = generalizedBoxIou(preds.predBoxes, gtBoxes).data;
    for (let j = 0; j < g; j++) {
      for (let i = 0; i < n; i++) {
        let c = 0;
        for (let q = 0; q < 2; q++) {
          const p = preds.clsProbs[2 * i + q]!;
          c += q === gtLabels[j] ? pos(Math.max(p, 1e-12)) : neg(Math.min(p, 1 - 1e-12));
        }
        c += 1.5 * (1 - giou[g * i + j]!);
        if (valid.has(j * n + i)) expect(c).toBeCloseTo(valid.get(j * n + i)!, 4);
        pr.push(j);
        pc.push(i);
        cost.push(valid.has(j * n + i) ? c : c + 1e6);
      }
    }
    for (let i = 0; i < n; i++) {
      pr.push(g);
      pc.push(i);
      cost.push(neg(preds.clsProbs[2 * i]!) + neg(preds.clsProbs[2 * i + 1]!));
    }
    const supply = new Float64Array(g + 1);
    t.rowGt.forEach((j, r) => {
      supply[j] = t.supply[r]!;
    });
    supply[g] = n - supply.reduce((s, v) => s + v, 0);
    const dense = sinkhorn(
      {
        rows: g + 1,
        cols: n,
        pairRow: Int32Array.from(pr),
        pairCol: Int32Array.from(pc),
        cost: Float64Array.from(cost),
        supply,
        demand: new Float64Array(n).fill(1),
      },
      { absorbEvery: 0 },
    ).plan;
    const rowMax = new Float64Array(g + 1);
    dense.forEach((v, k) => {
      rowMax[pr[k]!] = Math.max(rowMax[pr[k]!]!, v);
    });
    const expected = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let best = -1;
      let arg = -1;
      for (let j = 0; j <= g; j++) {
        const v = dense[j * n + i]! / rowMax[j]!;
        if (v > best) {
          best = v;
          arg = j;
        }
      }
      expected[i] = arg === g ? -1 : arg;
    }
    expect(result.numPositives).toBeGreaterThan(3);
    expect(Array.from(result.gtIndex)).toEqual(Array.from(expected));
  });

  it('stabilised scaling iterations give the log-space iterates (plans equal to 1e-9)', () => {
    const rand = rng(13);
    for (let t = 0; t < 5; t++) {
      const rows = 3 + t;
      const cols = 40;
      const pr: number[] = [];
      const pc: number[] = [];
      const cost: number[] = [];
      for (let c = 0; c < cols; c++) {
        for (let r = 0; r < rows - 1; r++) {
          if (rand() < 0.4) {
            pr.push(r);
            pc.push(c);
            cost.push(rand() * 3 * 10 ** (t - 2));
          }
        }
        pr.push(rows - 1);
        pc.push(c);
        cost.push(rand());
      }
      const supply = Float64Array.from({ length: rows }, (_, r) => (r < rows - 1 ? 1 + (r % 3) : 0));
      supply[rows - 1] = cols - supply.reduce((s, v) => s + v, 0);
      const problem = {
        rows,
        cols,
        pairRow: Int32Array.from(pr),
        pairCol: Int32Array.from(pc),
        cost: Float64Array.from(cost),
        supply,
        demand: new Float64Array(cols).fill(1),
      };
      const fast = sinkhorn(problem).plan;
      const reference = sinkhorn(problem, { absorbEvery: 0 }).plan;
      let diff = 0;
      for (let k = 0; k < fast.length; k++) diff = Math.max(diff, Math.abs(fast[k]! - reference[k]!));
      expect(diff).toBeLessThan(1e-9);
    }
  });

  it('Sinkhorn in log space copes with costs of any scale (up to 1e6 / eps 0.1)', () => {
    // 2 suppliers x 3 demanders, dense, costs scaled from 1e-3 to 1e6: never NaN or Infinity and the
    // supply side (updated last) is exact. The demand side converges within the iterations only while
    // cost differences are within a few hundred eps; far beyond that entropic OT is an unregularised
    // LP that Sinkhorn approaches slowly, which is one reason OTA here drops the 1e6 penalty pairs.
    for (const scale of [1e-3, 1, 1e3, 1e6]) {
      const problem = {
        rows: 2,
        cols: 3,
        pairRow: Int32Array.from([0, 0, 0, 1, 1, 1]),
        pairCol: Int32Array.from([0, 1, 2, 0, 1, 2]),
        cost: Float64Array.from([0.2, 0.9, 0.4, 0.5, 0.1, 0.8], (v) => v * scale),
        supply: Float64Array.from([1, 2]),
        demand: Float64Array.from([1, 1, 1]),
      };
      const { plan } = sinkhorn(problem, { iterations: 200 });
      expect(plan.every(Number.isFinite)).toBe(true);
      expect(plan[0]! + plan[1]! + plan[2]!).toBeCloseTo(1, 6);
      expect(plan[3]! + plan[4]! + plan[5]!).toBeCloseTo(2, 6);
      if (scale <= 1) for (let c = 0; c < 3; c++) expect(plan[c]! + plan[c + 3]!).toBeCloseTo(1, 4);
    }
  });
});
