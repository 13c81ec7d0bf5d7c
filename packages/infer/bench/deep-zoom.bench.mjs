// What a slide's Deep Zoom pyramid (`bmc detect --deep-zoom`) costs in disk, files and time:
// - the synthetic 40,000 px slide of the slide test (4 smear fields on glass), every tile written
//   (the reference) against bare-glass tiles left out (the default), rounds alternating so drifting
//   load on a shared machine falls on both alike; the ratio is of the same run;
// - a slide covered by smear (fields edge to edge), where no tile is glass: bytes per tile, which
//   scale to a fully covered slide of any size.
// Disk is counted twice: the JPEG bytes, and the blocks the file system allocates (a file takes at
// least one block, which dominates for tens of thousands of small glass tiles).
//
// Run after `pnpm build`: node bench/deep-zoom.bench.mjs [--side 40000] [--dense 3840] [--rounds 1]
// [--out bench/measured/deep-zoom.json]
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, machineRecord, report } from '@bmc/bench-utils';
import { writeSmearSlide } from '@bmc/data';
import { writeDeepZoom } from '@bmc/infer';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIDE = Number(arg('side', '40000'));
const DENSE = Number(arg('dense', '3840'));
const ROUNDS = Number(arg('rounds', '1'));
const OUT = arg('out', join(here, 'measured', 'deep-zoom.json'));
const GLASS = [242, 240, 241]; // writeSmearSlide's glass
const STEP = 224;

const machine = machineRecord();
const dir = mkdtempSync(join(tmpdir(), 'bmc-dz-bench-'));

/** JPEG tiles, their bytes, and the bytes the file system allocates for them. */
function usage(root) {
  let tiles = 0;
  let bytes = 0;
  let allocated = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const st = statSync(p);
        if (e.name.endsWith('.jpeg')) tiles++;
        bytes += st.size;
        allocated += st.blocks * 512;
      }
    }
  };
  walk(root);
  return { tiles, bytes, allocated };
}

async function timed(src, dest, opts) {
  rmSync(dest, { recursive: true, force: true });
  const t0 = performance.now();
  await writeDeepZoom(src, dest, opts);
  return { ms: performance.now() - t0, ...usage(dest) };
}

try {
  const sparse = join(dir, 'sparse.tif');
  const n = Math.floor(SIDE / STEP);
  await writeSmearSlide(sparse, {
    seed: 7,
    width: SIDE,
    height: SIDE,
    fields: [
      [2, 3],
      [10, 5],
      [5, 12],
      [n - 3, n - 4],
    ].map(([a, b]) => [a * STEP, b * STEP]),
  });
  const dense = join(dir, 'dense.tif');
  const grid = Math.floor(DENSE / 320);
  await writeSmearSlide(dense, {
    seed: 1,
    width: grid * 320,
    height: grid * 320,
    fields: Array.from({ length: grid * grid }, (_, k) => [320 * (k % grid), 320 * Math.floor(k / grid)]),
    margin: 8,
  });

  const every = [];
  const skipped = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? ['skipped', 'every'] : ['every', 'skipped'];
    for (const mode of order)
      (mode === 'every' ? every : skipped).push(
        await timed(sparse, join(dir, `sparse-${mode}.dz`), mode === 'every' ? {} : { glass: GLASS }),
      );
  }
  const full = await timed(dense, join(dir, 'dense.dz'), { glass: GLASS });
  const median = (a) => a.map((x) => x.ms).sort((x, y) => x - y)[a.length >> 1];
  const rows = [
    {
      name: `${SIDE} px slide, 4 fields, every tile written`,
      ms: median(every),
      tiles: every[0].tiles,
      bytes: every[0].bytes,
      allocatedBytes: every[0].allocated,
    },
    {
      name: `${SIDE} px slide, 4 fields, bare glass left out`,
      ms: median(skipped),
      refMs: median(every),
      ref: 'every tile',
      tiles: skipped[0].tiles,
      bytes: skipped[0].bytes,
      allocatedBytes: skipped[0].allocated,
    },
    {
      name: `${grid * 320} px slide covered by smear, bare glass left out`,
      ms: full.ms,
      tiles: full.tiles,
      bytes: full.bytes,
      allocatedBytes: full.allocated,
      bytesPerTile: Math.round(full.bytes / full.tiles),
    },
  ];
  const notes = [
    `a ${SIDE} px slide fully covered at the smear slide's density: ~${
      Math.round((((full.bytes / (grid * 320) ** 2) * SIDE * SIDE) / 1e9) * 100) / 100
    } GB of tiles`,
  ];
  report(
    'infer-deep-zoom',
    rows.map((r) => ({ ...r, extra: `${r.tiles} tiles, ${r.bytes} B, ${r.allocatedBytes} B allocated` })),
    notes,
  );
  const file = {
    command: `node bench/deep-zoom.bench.mjs --side ${SIDE} --dense ${DENSE} --rounds ${ROUNDS}`,
    date: new Date().toISOString(),
    machine: { ...machine, loadavgAtEnd: loadAverage() },
    rows,
    notes,
  };
  await writeFile(`${OUT}.tmp`, `${JSON.stringify(file, null, 2)}\n`);
  await rename(`${OUT}.tmp`, OUT);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
