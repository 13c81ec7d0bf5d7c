import { join } from 'node:path';
import { type ClassificationReport, confusionSvg, type DifferentialCount } from '@bmc/classify';
import { writeFileAtomic } from '@bmc/core/node';
import type { TypingAgreement } from '../classify/typing-agreement.js';

/** The second stage as the run report shows it (the demo's cell-type classifier). */
export interface ClassifierReportInput {
  classNames: string[];
  /** Held-out crops of the classifier's own split. */
  test: ClassificationReport;
  steps: number;
  trainSeconds: number;
  /** Where the classifier's run folder is, relative to the report (its report.md has the confused crops). */
  runDir: string;
  /** The differential `bmc detect --classifier` counted on unseen images, and what was really drawn there. */
  differential?: {
    counted: DifferentialCount;
    truth?: Record<string, number>;
    images: number;
    /** Detected cells matched to known ones, called type against known type. */
    agreement?: TypingAgreement;
  };
}

const f = (x: number) => x.toFixed(3);

/**
 * Markdown lines of the report's cell-type section: per-class precision / recall / F1, balanced
 * accuracy, the confusion matrix picture (written beside the report as `classifier-confusion.svg`)
 * and the differential count on unseen images next to the true one.
 */
export function classifierSection(reportDir: string, c: ClassifierReportInput): string[] {
  writeFileAtomic(
    join(reportDir, 'classifier-confusion.svg'),
    confusionSvg(c.test.confusion, c.classNames, 'Cell types, held-out crops: rows true, columns predicted'),
  );
  const lines = [
    '## Cell types (second stage: crop classifier)',
    '',
    `${c.steps} steps, ${c.trainSeconds.toFixed(0)} s of training; held-out crops: balanced accuracy **${f(c.test.balancedAccuracy)}**, macro-F1 **${f(c.test.macroF1)}**, accuracy ${f(c.test.accuracy)} (classifier run: ${c.runDir}/report.md).`,
    '',
    '| type | precision | recall | F1 | support |',
    '|---|---|---|---|---|',
    ...c.test.perClass.map(
      (s, i) => `| ${c.classNames[i]} | ${f(s.precision)} | ${f(s.recall)} | ${f(s.f1)} | ${s.support} |`,
    ),
    '',
    '![cell-type confusion matrix](classifier-confusion.svg)',
    '',
  ];
  const d = c.differential;
  if (d) {
    const truthTotal = d.truth ? Object.values(d.truth).reduce((a, b) => a + b, 0) : 0;
    lines.push(
      `### Differential count on ${d.images} unseen images (bmc detect --classifier, probability >= ${d.counted.threshold})`,
      '',
      d.truth ? '| type | counted | % | drawn (truth) | % |' : '| type | counted | % |',
      d.truth ? '|---|---|---|---|---|' : '|---|---|---|',
      ...d.counted.rows.map((r) => {
        const t = d.truth?.[r.type];
        const truth =
          d.truth !== undefined
            ? ` ${t ?? '-'} | ${t !== undefined && truthTotal ? ((100 * t) / truthTotal).toFixed(1) : '-'} |`
            : '';
        return `| ${r.type} | ${r.count} | ${r.percent.toFixed(1)} |${truth}`;
      }),
      `| **nucleated** | **${d.counted.total}** | 100 |${d.truth ? ` **${truthTotal}** | 100 |` : ''}`,
      '',
    );
    const a = d.agreement;
    if (a)
      lines.push(
        `Cell by cell (each detected cell matched to a known one at IoU >= 0.5): ${a.matched} of ${a.known} known cells detected, ${a.typed} typed, **${a.agree}** with the known type (${((100 * a.agree) / Math.max(1, a.typed)).toFixed(1)}%), ${a.matched - a.typed} unclassified.`,
        '',
      );
  }
  return lines;
}
