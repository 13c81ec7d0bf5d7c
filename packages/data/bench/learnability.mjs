// Learnability probe for the synthetic smears (not a test, not timed against anything): writes
// 500 + 100 fields at 160 x 160 to a temp folder, trains a tiny CenterNet from scratch with
// Debian's PyTorch (/usr/bin/python3) for BMC_PROBE_SECONDS (default 240) on CPU, and prints
// AP50 / AP75 on the held-out 100. Run after `pnpm build`: `node bench/learnability.mjs`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSmearDataset } from '../dist/index.js';

const python = '/usr/bin/python3';
const ok = existsSync(python) && spawnSync(python, ['-c', 'import torch, PIL']).status === 0;
if (!ok) {
  console.log('learnability probe skipped: needs /usr/bin/python3 with torch and PIL (Debian python3-torch)');
} else {
  const dir = await mkdtemp(join(tmpdir(), 'bmc-probe-'));
  try {
    await writeSmearDataset(dir, {
      seed: 5,
      splits: { train: 500, val: 100 },
      width: 160,
      height: 160,
      cellSize: [14, 32],
    });
    const script = fileURLToPath(new URL('./learnability_probe.py', import.meta.url));
    spawnSync(python, [script, dir, process.env.BMC_PROBE_SECONDS ?? '240'], { stdio: 'inherit' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
