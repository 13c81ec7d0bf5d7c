import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '@bmc/core';
import { writeFileAtomic } from '@bmc/data';

/** Where a labelled image came from. */
export interface LedgerEntry {
  readonly batch: string;
  readonly round: number;
  /** The corrected file it was imported from. */
  readonly source: string;
  readonly importedAt: string;
  /** A digest of its boxes and class names: a re-import with the same labels is a no-op. */
  readonly digest: string;
  readonly boxes: number;
}

export interface RoundRecord {
  readonly round: number;
  readonly batches: string[];
  /** The metric measured after training on the labels up to this round (`bmc label metric`). */
  metric?: { ap50?: number; ap75?: number; run?: string; recordedAt: string };
}

/** `ledger.json` beside the growing dataset: which batch and round each image came from. */
export interface Ledger {
  readonly kind: 'bmc-label-ledger';
  readonly version: 1;
  /** Folders of unlabelled smears (recorded by `bmc label rank`), for the unlabelled count. */
  pool: string[];
  images: Record<string, LedgerEntry>;
  rounds: RoundRecord[];
}

export const DATASET_FILE = 'dataset.json';
export const LEDGER_FILE = 'ledger.json';

export function emptyLedger(): Ledger {
  return { kind: 'bmc-label-ledger', version: 1, pool: [], images: {}, rounds: [] };
}

/** The ledger of a dataset folder; an empty one when the folder has none yet. */
export async function readLedger(dir: string): Promise<Ledger> {
  const file = join(dir, LEDGER_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyLedger();
    throw new InputError(`${file}: cannot read (${(e as Error).message})`, file);
  }
  let doc: Ledger;
  try {
    doc = JSON.parse(text) as Ledger;
  } catch (e) {
    throw new InputError(`${file}: malformed JSON (${(e as Error).message}); restore it from a backup`, file);
  }
  if (doc?.kind !== 'bmc-label-ledger' || typeof doc.images !== 'object' || !Array.isArray(doc.rounds))
    throw new InputError(`${file}: not a bmc label ledger`, file);
  return { ...doc, pool: doc.pool ?? [] };
}

export async function writeLedger(dir: string, ledger: Ledger): Promise<void> {
  await writeFileAtomic(join(dir, LEDGER_FILE), `${JSON.stringify(ledger, null, 1)}\n`);
}
