import { join, resolve } from 'node:path';
import { writeFileAtomic } from '@bmc/core/node';
import { loadConfig } from '../config/load.js';
import { ABLATION_GRID, BASELINE_LEVELS, THESIS_AS_WRITTEN } from '../config/presets.js';
import type { TrainConfigInput } from '../config/schema.js';
import { train } from '../train/trainer.js';
import { evaluateSplit, loadRun } from './pipeline.js';

export interface AblationVariant {
  name: string;
  overrides: TrainConfigInput;
}

/**
 * The thesis's grid (PAN-attn on/off x IoU branch on/off, as the `ablation-*` presets; the FPN cells on
 * the baseline's P3-P7), the assigner comparison, then one variant per departure from the thesis
 * (docs/departures.md): each switches one of bmc's choices back to what the thesis says.
 */
export function ablationVariants(): AblationVariant[] {
  const grid: AblationVariant[] = ABLATION_GRID.map((cell) => ({
    name: cell.label,
    overrides: {
      model: {
        neck: { type: cell.neck, ...(cell.levels ? { levels: cell.levels } : {}) },
        head: { iouBranch: cell.iouBranch },
      },
    },
  }));
  for (const type of ['maxiou', 'atss', 'paa', 'ota'] as const) {
    grid.push({ name: `assigner ${type}`, overrides: { assigner: { type } } });
  }
  const thesis: AblationVariant[] = [
    {
      name: 'thesis: pan-attn + IoU branch on the baseline anchors (N3-N7)',
      overrides: {
        model: { neck: { type: 'pan-attn', levels: [...BASELINE_LEVELS] }, head: { iouBranch: true } },
      },
    },
    { name: 'thesis: IoU BCE over all anchors', overrides: { loss: THESIS_AS_WRITTEN.loss! } },
    {
      name: 'thesis: PAA split by the mixture means',
      overrides: { assigner: { type: 'paa', options: { selection: 'thesis' } } },
    },
    { name: 'thesis: OTA without row normalisation', overrides: { assigner: THESIS_AS_WRITTEN.assigner! } },
    {
      name: 'thesis: no warm-up, clipping or augmentation',
      overrides: { optim: THESIS_AS_WRITTEN.optim!, data: THESIS_AS_WRITTEN.data! },
    },
  ];
  return [...grid, ...thesis];
}

export interface AblationRow {
  variant: string;
  run: string;
  steps: number;
  AP: number;
  AP50: number;
  AP75: number;
  AP90: number | null;
}

/**
 * Trains every variant under the same budget (epochs or minutes) from the same
 * base config and data, evaluates each on the test split, and writes one
 * combined table (Markdown + JSON) into `<runsDir>/ablation-<stamp>/`.
 */
export async function ablation(o: {
  preset?: string;
  set?: string[];
  budgetMin?: number;
  runsDir?: string;
  only?: string[];
  log?: (s: string) => void;
}): Promise<{ rows: AblationRow[]; table: string; dir: string }> {
  const say = o.log ?? ((s: string) => console.log(s));
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  const dir = resolve(o.runsDir ?? 'runs', `ablation-${stamp}`);
  const rows: AblationRow[] = [];
  for (const v of ablationVariants().filter((x) => !o.only || o.only.some((s) => x.name.includes(s)))) {
    const config = loadConfig({
      preset: o.preset ?? 'tiny',
      set: o.set ?? [],
      overrides: {
        ...v.overrides,
        name: v.name.replace(/[^a-z0-9]+/gi, '-'),
        ...(o.budgetMin ? { run: { timeBudgetMin: o.budgetMin } } : {}),
      },
    });
    say(`== ${v.name}`);
    const trained = await train(config, { runsDir: dir, log: say, progress: false });
    const run = await loadRun(trained.paths.root, 'best');
    const ev = await evaluateSplit(run, run.splits.test);
    const s = ev.result.stats;
    rows.push({
      variant: v.name,
      run: trained.paths.root,
      steps: trained.state.step,
      AP: s[0]!,
      AP50: s[1]!,
      AP75: s[2]!,
      AP90: ev.report.apAt.AP90 ?? null,
    });
  }
  const f = (x: number | null) => (x === null ? '-' : x.toFixed(4));
  const table = [
    '| variant | steps | AP | AP50 | AP75 | AP90 |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) => `| ${r.variant} | ${r.steps} | ${f(r.AP)} | ${f(r.AP50)} | ${f(r.AP75)} | ${f(r.AP90)} |`,
    ),
  ].join('\n');
  writeFileAtomic(join(dir, 'ablation.md'), `# Ablation\n\n${table}\n`);
  writeFileAtomic(join(dir, 'ablation.json'), `${JSON.stringify(rows, null, 2)}\n`);
  return { rows, table, dir };
}
