import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { verifyCheckpoint } from '@bmc/export';
import { newestGoodCheckpoint } from '../train/checkpoints.js';
import { listCheckpoints, type RunPaths } from './run-dir.js';

/**
 * Left-overs of checkpoint writes killed midway (@bmc/core's `writeDirAtomic`): `.<name>.tmp-<pid>-<hex>`
 * is a checkpoint being filled, `.<name>.old-<pid>-<hex>` the previous version moved aside for the
 * swap. Group 1 is the checkpoint's name, 2 the kind, 3 the writer's process id.
 */
const LEFTOVER = /^\.(step-\d+|best)\.(tmp|old)-(\d+)-[0-9a-f]+$/;

const alive = (pid: number) => {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Cleans a run folder after a crash during a checkpoint write: half-written `.tmp-*` folders are
 * removed; a `.old-*` folder is renamed back when the crash came between the two renames of a
 * swap (its checkpoint is then missing), and removed otherwise. Folders of a writer that is still
 * running are left alone. Returns what was done, one line each.
 */
export function cleanInterruptedWrites(paths: RunPaths): string[] {
  const done: string[] = [];
  for (const parent of [paths.root, paths.checkpoints]) {
    if (!existsSync(parent)) continue;
    // .old before .tmp does not matter: names are distinct; sorted for reproducible messages.
    for (const name of readdirSync(parent).sort()) {
      const m = LEFTOVER.exec(name);
      if (!m || alive(Number(m[3]))) continue;
      const dir = join(parent, name);
      const target = join(parent, m[1]!);
      if (m[2] === 'old' && !existsSync(target)) {
        renameSync(dir, target);
        done.push(`restored ${target} from ${name} (a checkpoint swap was interrupted)`);
      } else {
        rmSync(dir, { recursive: true, force: true });
        done.push(`removed ${dir} (left by an interrupted checkpoint write)`);
      }
    }
  }
  return done;
}

/**
 * The checkpoint a resumed run continues from: the newest step checkpoint that verifies, else the
 * intact `best/` (with a message: training then repeats the steps since best). Unusable ones are
 * reported through `say`. Interrupted writes are cleaned first.
 */
export function resumeCheckpoint(paths: RunPaths, say: (s: string) => void): string | undefined {
  for (const line of cleanInterruptedWrites(paths)) say(line);
  const step = newestGoodCheckpoint(paths, say);
  if (step) return step;
  if (!existsSync(paths.best)) return undefined;
  try {
    verifyCheckpoint(paths.best);
  } catch (err) {
    say(`checkpoint ${paths.best} is unusable (${(err as Error).message})`);
    return undefined;
  }
  say(
    `${listCheckpoints(paths).length ? 'every step checkpoint is unusable' : 'no step checkpoint'}; resuming from ${paths.best} (the best weights so far)`,
  );
  return paths.best;
}
