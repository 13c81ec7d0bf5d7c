import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { InputError } from '@bmc/core';
import { expandInputs } from '@bmc/infer';
import { DATASET_FILE, LEDGER_FILE, readLedger, writeLedger } from './ledger.js';

export interface LabelStatus {
  labelled: number;
  boxes: number;
  /** Images in the pool folders that are not labelled yet (undefined without a pool). */
  unlabelled?: number;
  pool: string[];
  rounds: {
    round: number;
    batches: string[];
    images: number;
    boxes: number;
    cumulative: number;
    metric?: { ap50?: number; ap75?: number; run?: string };
  }[];
}

/** Counts from the ledger; the unlabelled count from the pool folders (`pool`, else those rank recorded). */
export async function labelStatus(dir: string, pool?: string[]): Promise<LabelStatus> {
  const root = resolve(dir);
  if (!existsSync(join(root, LEDGER_FILE)))
    throw new InputError(
      `${root}: no ${LEDGER_FILE} (not a labelled dataset yet: run bmc label import first)`,
      root,
    );
  const ledger = await readLedger(root);
  const entries = Object.entries(ledger.images);
  const folders = pool?.length ? pool.map((p) => resolve(p)) : ledger.pool;
  let unlabelled: number | undefined;
  if (folders.length) {
    const files = await expandInputs(folders);
    unlabelled = files.filter((f) => !(basename(f) in ledger.images)).length;
  }
  let cumulative = 0;
  const rounds = ledger.rounds.map((r) => {
    const mine = entries.filter(([, e]) => e.round === r.round);
    cumulative += mine.length;
    return {
      round: r.round,
      batches: r.batches,
      images: mine.length,
      boxes: mine.reduce((s, [, e]) => s + e.boxes, 0),
      cumulative,
      ...(r.metric ? { metric: r.metric } : {}),
    };
  });
  return {
    labelled: entries.length,
    boxes: entries.reduce((s, [, e]) => s + e.boxes, 0),
    ...(unlabelled !== undefined ? { unlabelled } : {}),
    pool: folders,
    rounds,
  };
}

export function formatStatus(dir: string, s: LabelStatus): string {
  const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(3));
  const lines = [
    `${join(resolve(dir), DATASET_FILE)}: ${s.labelled} labelled images, ${s.boxes} boxes` +
      (s.unlabelled !== undefined
        ? `; ${s.unlabelled} unlabelled in ${s.pool.join(', ')}`
        : ' (no pool recorded: pass --pool <smears>)'),
    'round  batches                 images  boxes  labelled  AP50   AP75',
    ...s.rounds.map(
      (r) =>
        `${String(r.round).padStart(5)}  ${r.batches.join(',').padEnd(22).slice(0, 22)}  ${String(r.images).padStart(6)}  ` +
        `${String(r.boxes).padStart(5)}  ${String(r.cumulative).padStart(8)}  ${f(r.metric?.ap50).padEnd(5)}  ${f(r.metric?.ap75)}`,
    ),
  ];
  return lines.join('\n');
}

/** `bmc label metric`: records AP50/AP75 measured after training on the labels up to a round. */
export async function recordMetric(
  dir: string,
  o: { round: number; ap50?: number; ap75?: number; run?: string },
): Promise<string> {
  const root = resolve(dir);
  const ledger = await readLedger(root);
  const r = ledger.rounds.find((x) => x.round === o.round);
  if (!r)
    throw new InputError(
      `${join(root, LEDGER_FILE)}: no round ${o.round} (rounds: ${ledger.rounds.map((x) => x.round).join(', ') || 'none'})`,
    );
  for (const [k, v] of [['--ap50', o.ap50] as const, ['--ap75', o.ap75] as const])
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new InputError(`${k} ${v}: an AP is between 0 and 1`);
  r.metric = {
    ...(o.ap50 !== undefined ? { ap50: o.ap50 } : {}),
    ...(o.ap75 !== undefined ? { ap75: o.ap75 } : {}),
    ...(o.run ? { run: o.run } : {}),
    recordedAt: new Date().toISOString(),
  };
  await writeLedger(root, ledger);
  return `round ${o.round}: AP50 ${o.ap50 ?? '-'}, AP75 ${o.ap75 ?? '-'} recorded`;
}
