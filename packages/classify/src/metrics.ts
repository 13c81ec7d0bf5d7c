/** Classification metrics on integer labels: confusion matrix and what a report reads from it. */

/** `m[t][p]`: how many samples of true class `t` were predicted as `p`. */
export function confusionMatrix(truth: ArrayLike<number>, pred: ArrayLike<number>, k: number): number[][] {
  if (truth.length !== pred.length) throw new RangeError('confusionMatrix: truth and pred differ in length');
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < truth.length; i++) m[truth[i]!]![pred[i]!]!++;
  return m;
}

export interface ClassScores {
  precision: number;
  recall: number;
  f1: number;
  /** True samples of the class. */
  support: number;
}

export interface ClassificationReport {
  perClass: ClassScores[];
  accuracy: number;
  /** Mean per-class recall over classes present in the truth (scikit-learn's balanced_accuracy_score). */
  balancedAccuracy: number;
  /** Mean per-class F1 over classes present in the truth. */
  macroF1: number;
  confusion: number[][];
}

/** Precision / recall / F1 per class (0 where undefined, as scikit-learn's zero_division=0). */
export function classificationReport(
  truth: ArrayLike<number>,
  pred: ArrayLike<number>,
  k: number,
): ClassificationReport {
  const confusion = confusionMatrix(truth, pred, k);
  const perClass: ClassScores[] = [];
  let correct = 0;
  for (let c = 0; c < k; c++) {
    const tp = confusion[c]![c]!;
    correct += tp;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass.push({ precision, recall, f1, support });
  }
  const present = perClass.filter((s) => s.support > 0);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    perClass,
    accuracy: truth.length ? correct / truth.length : 0,
    balancedAccuracy: mean(present.map((s) => s.recall)),
    macroF1: mean(present.map((s) => s.f1)),
    confusion,
  };
}

/** Off-diagonal pairs (true, predicted) by count, most frequent first (ties: lower indices first). */
export function mostConfusedPairs(
  confusion: number[][],
  top = 5,
): { truth: number; pred: number; count: number }[] {
  const pairs: { truth: number; pred: number; count: number }[] = [];
  confusion.forEach((row, t) => {
    row.forEach((count, p) => {
      if (t !== p && count > 0) pairs.push({ truth: t, pred: p, count });
    });
  });
  pairs.sort((a, b) => b.count - a.count || a.truth - b.truth || a.pred - b.pred);
  return pairs.slice(0, top);
}

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The confusion matrix as an SVG picture: rows true, columns predicted, cells shaded by row share. */
export function confusionSvg(
  confusion: number[][],
  names: readonly string[],
  title = 'Confusion matrix',
): string {
  const k = names.length;
  const cell = 34;
  const left = 150;
  const top = 150;
  // Room on the right for the rotated column labels.
  const w = left + k * cell + 110;
  const h = top + k * cell + 40;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="11">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${left}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`,
    `<text x="${left + (k * cell) / 2}" y="${h - 8}" text-anchor="middle">predicted</text>`,
    `<text x="12" y="${top + (k * cell) / 2}" transform="rotate(-90 12 ${top + (k * cell) / 2})" text-anchor="middle">true</text>`,
  ];
  names.forEach((n, i) => {
    parts.push(
      `<text x="${left - 6}" y="${top + i * cell + cell / 2 + 4}" text-anchor="end">${esc(n)}</text>`,
    );
    const x = left + i * cell + cell / 2 + 4;
    parts.push(`<text x="${x}" y="${top - 6}" transform="rotate(-60 ${x} ${top - 6})">${esc(n)}</text>`);
  });
  confusion.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((v, p) => {
      const share = v / total;
      const shade = Math.round(255 * (1 - share));
      const fill =
        t === p ? `rgb(${shade},${Math.round(255 - share * 110)},${shade})` : `rgb(255,${shade},${shade})`;
      parts.push(
        `<rect x="${left + p * cell}" y="${top + t * cell}" width="${cell}" height="${cell}" fill="${fill}" stroke="#ccc"/>`,
      );
      if (v > 0)
        parts.push(
          `<text x="${left + p * cell + cell / 2}" y="${top + t * cell + cell / 2 + 4}" text-anchor="middle" fill="${share > 0.6 ? 'white' : 'black'}">${v}</text>`,
        );
    });
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
