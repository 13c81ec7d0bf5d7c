import type { Accumulated } from './accumulate.js';
import type { EvalParams } from './params.js';

/** Names of pycocotools' 12 bbox summary numbers, in its order. */
export const STAT_NAMES = [
  'AP',
  'AP50',
  'AP75',
  'APs',
  'APm',
  'APl',
  'AR1',
  'AR10',
  'AR100',
  'ARs',
  'ARm',
  'ARl',
] as const;
export type StatName = (typeof STAT_NAMES)[number];

export interface SummarizeQuery {
  /** true: average precision; false: average recall. */
  ap: boolean;
  /** One IoU threshold, compared exactly as pycocotools does (`iouThr == iouThrs`); all when absent. */
  iouThr?: number;
  areaLabel?: string;
  maxDets?: number;
}

/** pycocotools `_summarize`: mean of the selected entries that are > -1, or -1 when none are. */
export function summarizeOne(acc: Accumulated, p: EvalParams, q: SummarizeQuery): number {
  const [T, R, K, A, M] = acc.counts;
  const area = q.areaLabel ?? 'all';
  const maxDets = q.maxDets ?? 100;
  const aind = p.areaRng.findIndex((a) => a.label === area);
  const mind = p.maxDets.indexOf(maxDets);
  if (aind < 0 || mind < 0) return -1;
  let sum = 0;
  let n = 0;
  for (let t = 0; t < T; t++) {
    if (q.iouThr !== undefined && p.iouThrs[t] !== q.iouThr) continue;
    if (q.ap) {
      for (let r = 0; r < R; r++) {
        for (let k = 0; k < K; k++) {
          const v = acc.precision[(((t * R + r) * K + k) * A + aind) * M + mind]!;
          if (v > -1) {
            sum += v;
            n++;
          }
        }
      }
    } else {
      for (let k = 0; k < K; k++) {
        const v = acc.recall[((t * K + k) * A + aind) * M + mind]!;
        if (v > -1) {
          sum += v;
          n++;
        }
      }
    }
  }
  return n === 0 ? -1 : sum / n;
}

/** pycocotools `summarize()` for bbox: the 12 numbers of {@link STAT_NAMES}. */
export function summarizeStats(acc: Accumulated, p: EvalParams): number[] {
  const md = p.maxDets;
  const last = md[2] ?? md[md.length - 1]!;
  return [
    summarizeOne(acc, p, { ap: true }),
    summarizeOne(acc, p, { ap: true, iouThr: 0.5, maxDets: last }),
    summarizeOne(acc, p, { ap: true, iouThr: 0.75, maxDets: last }),
    summarizeOne(acc, p, { ap: true, areaLabel: 'small', maxDets: last }),
    summarizeOne(acc, p, { ap: true, areaLabel: 'medium', maxDets: last }),
    summarizeOne(acc, p, { ap: true, areaLabel: 'large', maxDets: last }),
    summarizeOne(acc, p, { ap: false, maxDets: md[0]! }),
    summarizeOne(acc, p, { ap: false, maxDets: md[1] ?? md[0]! }),
    summarizeOne(acc, p, { ap: false, maxDets: last }),
    summarizeOne(acc, p, { ap: false, areaLabel: 'small', maxDets: last }),
    summarizeOne(acc, p, { ap: false, areaLabel: 'medium', maxDets: last }),
    summarizeOne(acc, p, { ap: false, areaLabel: 'large', maxDets: last }),
  ];
}
