import { describe, expect, it } from 'vitest';
import {
  buildReport,
  evaluateCoco,
  measureFps,
  perClassAp,
  prCurves,
  prCurvesSvg,
  reportToJson,
  reportToMarkdown,
} from '../src/index.js';
import { ann, randomCase } from './helpers.js';

describe('per-class AP', () => {
  it('one category perfect, one half found, one without GT', () => {
    const gt = {
      images: [{ id: 1 }],
      categories: [
        { id: 1, name: 'blast' },
        { id: 2, name: 'lymphocyte' },
        { id: 3, name: 'plasma' },
      ],
      annotations: [
        ann(1, 1, [0, 0, 10, 10], 1),
        ann(2, 1, [50, 50, 10, 10], 2),
        ann(3, 1, [80, 0, 10, 10], 2),
      ],
    };
    const dt = [
      { image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], score: 0.9 },
      { image_id: 1, category_id: 2, bbox: [50, 50, 10, 10], score: 0.8 },
      { image_id: 1, category_id: 3, bbox: [200, 0, 10, 10], score: 0.7 },
    ];
    const rows = perClassAp(evaluateCoco(gt, dt));
    const eps = 2.220446049250313e-16;
    expect(rows.map((r) => r.name)).toEqual(['blast', 'lymphocyte', 'plasma']);
    expect(rows[0]!.ap).toBeCloseTo(1 / (1 + eps), 15);
    // recall reaches 0.5 with precision 1: recall points 0.00..0.50 = 51 of 101
    expect(rows[1]!.ap).toBeCloseTo((51 * (1 / (1 + eps))) / 101, 15);
    expect(rows[1]!.numGt).toBe(2);
    expect(rows[1]!.ar).toBe(0.5);
    expect(rows[2]).toMatchObject({ categoryId: 3, numGt: 0, ap: null, ap50: null, ar: null });
  });
});

describe('PR curves and reports', () => {
  const { gt, dt } = randomCase(21, { cats: 2 });
  const r = evaluateCoco(gt, dt);

  it('curves carry 101 points and their AP equals the COCO AP at that IoU', () => {
    const curves = prCurves(r, [0.5, 0.75]);
    expect(curves).toHaveLength(2);
    expect(curves[0]!.recall).toHaveLength(101);
    expect(curves[0]!.ap).toBeCloseTo(r.stats[1]!, 12);
    expect(curves[1]!.ap).toBeCloseTo(r.stats[2]!, 12);
    // Interpolated precision never increases with recall.
    for (const c of curves)
      for (let i = 1; i < 101; i++) expect(c.precision[i]!).toBeLessThanOrEqual(c.precision[i - 1]!);
    const one = prCurves(r, [0.5], { categoryId: gt.categories[1]!.id });
    expect(one[0]!.categoryId).toBe(gt.categories[1]!.id);
    expect(() => prCurves(r, [0.52])).toThrow(/0.52/);
  });

  it('SVG has axes, ticks, one polyline per curve and AP in the legend', () => {
    const curves = prCurves(r, [0.5, 0.75, 0.9]);
    const svg = prCurvesSvg(curves, { title: 'PR <test> & co' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline class="curve"/g)).toHaveLength(3);
    for (const t of ['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']) expect(svg).toContain(`>${t}</text>`);
    expect(svg).toContain('>Recall</text>');
    expect(svg).toContain('>Precision</text>');
    expect(svg).toContain(`IoU=0.50 (AP ${curves[0]!.ap!.toFixed(4)})`);
    expect(svg).toContain('PR &#60;test&#62; &#38; co');
    // Every point lies inside the plot box.
    const pts = [...svg.matchAll(/points="([^"]+)"/g)].flatMap((m) => m[1]!.split(' '));
    expect(pts).toHaveLength(3 * 101);
    for (const p of pts) {
      const [x, y] = p.split(',').map(Number);
      expect(x).toBeGreaterThanOrEqual(56);
      expect(x).toBeLessThanOrEqual(480 - 16);
      expect(y).toBeGreaterThanOrEqual(36);
      expect(y).toBeLessThanOrEqual(400 - 48);
    }
  });

  it('report JSON round-trips and Markdown holds every table', () => {
    const rep = buildReport(r, { title: 'val' });
    expect(JSON.parse(reportToJson(rep))).toEqual(rep);
    expect(rep.stats.AP).toBe(r.stats[0]);
    expect(rep.apAt.AP50).toBeCloseTo(r.stats[1]!, 12);
    expect(rep.bestF1).toHaveLength(10);
    expect(rep.perClass).toHaveLength(2);
    const md = reportToMarkdown(rep);
    expect(md).toContain('## val');
    expect(md).toContain('| AP | AP50 | AP75 | APs |');
    expect(md).toContain('| IoU | Precision | Recall | F1 | Score threshold | TP | FP | FN | AP |');
    expect(md).toContain(`| 0.50 | ${rep.bestF1[0]!.precision.toFixed(4)} |`);
    expect(md).toContain('| AP50 | AP75 | AP90 |');
    expect(md).toContain('| c1 |');
    // 3 header+separator pairs with one row, 10 sweep rows, 2 classes
    expect(md.split('\n').filter((l) => l.startsWith('|'))).toHaveLength(4 * 2 + 1 + 1 + 10 + 2);
  });
});

describe('measureFps', () => {
  it('reports the median of the timed runs after warm-up', async () => {
    let calls = 0;
    const times = [0, 4, 10, 36, 40, 43, 50, 55];
    let tick = 0;
    // Fake clock, read only around timed runs: they take 4, 26, 3, 5 ms -> median 4.5.
    const res = await measureFps(() => calls++, { warmup: 2, runs: 4, now: () => times[tick++]! });
    expect(calls).toBe(6);
    expect(res.timesMs).toEqual([4, 26, 3, 5]);
    expect(res.medianMs).toBe(4.5);
    expect(res.fps).toBeCloseTo(1000 / 4.5, 12);
  });
});
