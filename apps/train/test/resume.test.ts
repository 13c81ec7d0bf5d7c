import { existsSync, mkdirSync, mkdtempSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveCheckpoint } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { cleanInterruptedWrites, resumeCheckpoint } from '../src/run/resume.js';
import { checkpointDir, runPaths } from '../src/run/run-dir.js';

// A process id no process has (Linux pids stay below 2^22).
const DEAD = 99_999_999;

async function runWithCheckpoints(steps: number[], best: boolean) {
  const root = mkdtempSync(join(tmpdir(), 'bmc-resume-'));
  const paths = runPaths(root);
  const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
  for (const step of steps)
    await saveCheckpoint(checkpointDir(paths, step), { model, state: { step, epoch: 0 } });
  if (best) await saveCheckpoint(paths.best, { model, state: { step: 2, epoch: 0 } });
  model.dispose();
  return paths;
}

describe('resume (issue 22)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('falls back to the intact best/ when every step checkpoint is corrupt, and says so', async () => {
    const paths = await runWithCheckpoints([4, 8], true);
    for (const step of [4, 8]) truncateSync(join(checkpointDir(paths, step), 'weights.bin'), 3);
    const said: string[] = [];
    expect(resumeCheckpoint(paths, (s) => said.push(s))).toBe(paths.best);
    expect(said.filter((s) => /is unusable .*trying the previous one/.test(s))).toHaveLength(2);
    expect(said.at(-1)).toMatch(/every step checkpoint is unusable; resuming from .*best/);
  });

  it('prefers the newest good step checkpoint, and gives nothing when best/ is corrupt too', async () => {
    const paths = await runWithCheckpoints([4, 8], true);
    truncateSync(join(checkpointDir(paths, 8), 'weights.bin'), 3);
    expect(resumeCheckpoint(paths, () => {})).toBe(checkpointDir(paths, 4));
    truncateSync(join(checkpointDir(paths, 4), 'weights.bin'), 3);
    truncateSync(join(paths.best, 'weights.bin'), 3);
    expect(resumeCheckpoint(paths, () => {})).toBeUndefined();
  });

  it('removes folders left by killed checkpoint writes, restores a best/ caught mid-swap', async () => {
    const paths = await runWithCheckpoints([4], false);
    // A killed write of step 8 (half-filled temp) and a killed swap of best/ (best moved aside,
    // the new one not yet in place): what @bmc/core's writeDirAtomic leaves at those moments.
    mkdirSync(join(paths.checkpoints, `.step-0000008.tmp-${DEAD}-0a1b2c3d`));
    writeFileSync(join(paths.checkpoints, `.step-0000008.tmp-${DEAD}-0a1b2c3d`, 'weights.bin'), 'x');
    await saveCheckpoint(join(paths.root, `.best.old-${DEAD}-00ff00ff`), {
      model: tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1] })] }),
      state: { step: 2, epoch: 0 },
    });
    mkdirSync(join(paths.root, `.best.tmp-${DEAD}-11111111`));
    // A writer that is still running (this process's parent) keeps its temp folder.
    const live = `.step-0000012.tmp-${process.ppid}-22222222`;
    mkdirSync(join(paths.checkpoints, live));

    const done = cleanInterruptedWrites(paths);
    expect(done).toHaveLength(3);
    expect(readdirSync(paths.checkpoints).sort()).toEqual([live, 'step-0000004']);
    expect(readdirSync(paths.root).sort()).toEqual(['best', 'checkpoints']);
    expect(done.join('\n')).toMatch(/restored .*best from \.best\.old-/);
    // The restored best/ is a whole checkpoint again.
    expect(existsSync(join(paths.best, 'manifest.json'))).toBe(true);
    // A second pass finds nothing more to do.
    expect(cleanInterruptedWrites(paths)).toEqual([]);
  });

  it('a .best.old-* beside an intact best/ is removed, not restored', async () => {
    const paths = await runWithCheckpoints([], true);
    mkdirSync(join(paths.root, `.best.old-${DEAD}-33333333`));
    expect(cleanInterruptedWrites(paths)).toEqual([expect.stringMatching(/removed .*\.best\.old-/)]);
    expect(readdirSync(paths.root)).toEqual(['best']);
  });
});
