import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectorMetadata, exportDetectorOnnx } from '@bmc/export';
import { buildDetector, detectorConfig } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script (tooling/fixtures), typed by its JSDoc only
import { writeBadInputs } from '../../../tooling/fixtures/bad-inputs.mjs';
import { readJsonl } from '../src/run/jsonl-log.js';
import { listCheckpoints, runPaths } from '../src/run/run-dir.js';
import { smallSet } from './small-config.js';

/**
 * Issue 22's bad inputs (tooling/fixtures/bad-inputs.mjs writes them into a temp folder) through
 * the real CLI, as a user runs it: exit code by kind (2 bad usage / input, 1 failed work), a
 * message naming the file and the problem, no stack trace, no temporary files left behind.
 */
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const STACK = /\n\s+at /;
const TMP_NAME = /\.tmp($|[-.])|\.old-\d/;

interface Run {
  code: number | null;
  out: string;
  err: string;
  all: string;
  ms: number;
}

function bmc(args: string[], timeoutMs = 60_000): Promise<Run> {
  const t0 = performance.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BMC_DEBUG: '' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, out, err, all: out + err, ms: performance.now() - t0 });
    });
  });
}

/** Files and folders under `dir` (recursive) whose names are temporary-write leftovers. */
function leftovers(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (TMP_NAME.test(e.name)) found.push(join(d, e.name));
      if (e.isDirectory()) walk(join(d, e.name));
    }
  };
  if (existsSync(dir)) walk(dir);
  return found;
}

function expectClean(r: Run, code: number, ...patterns: RegExp[]) {
  expect(r.code, r.all).toBe(code);
  for (const p of patterns) expect(r.all).toMatch(p);
  expect(r.all).not.toMatch(STACK);
}

const raw = (w: number, h: number, rgb: Uint8Array) =>
  sharp(Buffer.from(rgb), { raw: { width: w, height: h, channels: 3 } });

let dir: string;
let C: any;
let model: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bmc-bad-inputs-'));
  C = await writeBadInputs(join(dir, 'corpus'), {
    png: (w: number, h: number, rgb: Uint8Array) => raw(w, h, rgb).png().toBuffer(),
    jpeg: (w: number, h: number, rgb: Uint8Array) => raw(w, h, rgb).jpeg({ quality: 90 }).toBuffer(),
  });
  // An untrained tiny detector with a high class prior: many candidates, also on a 1x1 image.
  await tf.setBackend('cpu');
  const det = buildDetector(detectorConfig('tiny', { head: { priorProbability: 0.3 } }));
  model = join(dir, 'random.onnx');
  writeFileSync(
    model,
    exportDetectorOnnx(det.model, detectorMetadata(det.config, { classNames: ['cell'] })).bytes,
  );
  det.model.dispose();
}, 120_000);

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('bmc data check on bad inputs (issue 22, items 5 and 8)', () => {
  it('5: a truncated JPEG is found by the default full decode, and passes --fast (headers only)', async () => {
    const full = await bmc(['data', 'check', C.truncated.train]);
    expectClean(
      full,
      2,
      /cut\.jpg is not a readable image \(cannot decode image: .*(premature end|truncated or corrupt)/i,
      /annotation id \d+: box/,
    );
    const fast = await bmc(['data', 'check', '--fast', C.truncated.train]);
    expect(fast.all).not.toMatch(/cut\.jpg/);
  });

  it('8: a FIFO named .png is refused without opening it (no hang)', async () => {
    const r = await bmc(['data', 'check', C.fifo.json], 30_000);
    expectClean(r, 2, /pipe\.png is not a readable image \(a FIFO \(named pipe\), not an image file\)/);
    expect(r.ms).toBeLessThan(30_000);
  });

  it('8: a symlink loop is reported as one, not as "not found"', async () => {
    const r = await bmc(['data', 'check', C.loop.json]);
    expectClean(r, 2, /loop-a\.png is not a readable image \(symlink loop/);
    expect(r.all).not.toMatch(/not found/);
  });

  it('8: a COCO file_name outside the dataset folder is refused unless --allow-outside-root', async () => {
    const r = await bmc(['data', 'check', C.escape]);
    expectClean(
      r,
      2,
      /image id 2: file_name "\.\.\/outside\.png" resolves to .* outside the dataset folder .*--allow-outside-root/,
      /image id 3: file_name /,
    );
    expectClean(await bmc(['data', 'check', '--allow-outside-root', C.escape]), 0, /no problems in 3 images/);
  });

  it('8: ANSI escapes and control characters from a label file are escaped, not echoed raw', async () => {
    const r = await bmc(['data', 'check', C.ansi]);
    expectClean(r, 2, /a\.txt: line 2: expected "class cx cy w h" .*\\x1b\[31mRED\\x1b\[0m\\x07 bell/);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: checking that none reach the terminal
    expect(r.all).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  });

  it('a missing or looping dataset path is bad input naming the path', async () => {
    expectClean(
      await bmc(['data', 'check', join(dir, 'nothing-here')]),
      2,
      /nothing-here: no such file or folder/,
    );
    expectClean(await bmc(['data', 'check', C.loop.png]), 2, /loop-a\.png: symlink loop/);
  });
});

describe('bmc train on bad inputs (issue 22, items 5, 6, 7, 10, 11)', () => {
  const small = [...smallSet(64, 8, 2), 'optim.warmupIters=1', 'run.evalEvery=1', 'optim.batchSize=2'];
  const train = (...args: string[]) =>
    bmc(['train', '--preset', 'tiny', '--runs', join(dir, 'runs'), '--no-progress', ...args], 300_000);
  const runDir = (r: Run) => /run folder: (.*)/.exec(r.out)?.[1]?.trim();
  const smallSets = small.flatMap((s) => ['--set', s]);
  /** Training on the set whose training split holds one truncated (undecodable) image. */
  const trainTruncated = (...args: string[]) =>
    train('--data', C.truncated.train, '--set', `data.valPath=${C.truncated.val}`, ...smallSets, ...args);

  it('7: --epochs 0 and a __proto__ config key are usage / input errors naming the problem', async () => {
    expectClean(await bmc(['train', '--epochs', '0']), 2, /--epochs must be at least 1, got 0/);
    expectClean(await bmc(['train', '--config', C.proto]), 2, /__proto__: unknown key '__proto__'/);
  });

  it('7: an empty dataset, or one without boxes, is refused with the split and the path', async () => {
    expectClean(
      await train('--data', C.empty.none, '--set', 'data.imageSize=64'),
      2,
      /the train split of .*none\.json has no images/,
    );
    expectClean(
      await train(
        '--data',
        C.empty.noBoxes,
        '--set',
        'data.imageSize=64',
        '--set',
        'data.autoSplit.val=0',
        '--set',
        'data.autoSplit.test=0',
      ),
      2,
      /the val split of .*no-boxes\.json has no images|the train split of .*no-boxes\.json has no boxes/,
    );
  }, 120_000);

  it('5: past data.maxBadImageShare an undecodable training image stops the run with a clear error (exit 2)', async () => {
    const r = await trainTruncated('--epochs', '1');
    expectClean(
      r,
      2,
      /1 of 6 images failed to load, more than the allowed share 0\.01 \(data\.maxBadImageShare\); the latest: .*cut\.jpg: cannot decode image/,
    );
  }, 300_000);

  let finished: string | undefined;
  it('5 + 7: below the share it is skipped and logged; dropped boxes are warned about once, with counts', async () => {
    const r = await trainTruncated('--set', 'data.maxBadImageShare=0.5', '--epochs', '2');
    expectClean(
      r,
      0,
      /warning: skipped .*cut\.jpg: cannot decode image/,
      /warning: train data .*: 2 box\(es\) dropped, 0 clipped, 0 image\(s\) dropped/,
    );
    expect(r.all.match(/warning: skipped/g)).toHaveLength(1); // once, not every epoch
    finished = runDir(r);
    const log = readJsonl(readFileSync(join(finished!, 'log.jsonl'), 'utf8'));
    expect(log.filter((e) => e.event === 'bad-image')).toEqual([
      expect.objectContaining({ failed: 1, file: C.truncated.cut }),
    ]);
    expect(log.find((e) => e.event === 'data-problems')).toMatchObject({ split: 'train', droppedBoxes: 2 });
    expect(leftovers(finished!)).toEqual([]);
  }, 300_000);

  it('10: with every step checkpoint corrupt, resume cleans leftovers and falls back to best/', async () => {
    expect(finished).toBeDefined();
    const paths = runPaths(finished!);
    for (const c of listCheckpoints(paths)) truncateSync(join(c.dir, 'weights.bin'), 10);
    // What killed checkpoint writes leave behind (pid 99999999 is no live process).
    mkdirSync(join(paths.checkpoints, '.step-0000099.tmp-99999999-0a0b0c0d'));
    mkdirSync(join(paths.root, '.best.old-99999999-0e0f0a0b'));
    const r = await bmc(['train', '--resume', finished!, '--no-progress'], 300_000);
    expectClean(
      r,
      0,
      /every step checkpoint is unusable; resuming from .*best/,
      /removed .*\.step-0000099\.tmp-/,
    );
    expect(leftovers(finished!)).toEqual([]);
  }, 300_000);

  it('6: a COCO JSON given alone is split (seeded), and the log and the report say so', async () => {
    const r = await train('--data', C.alone, ...smallSets, '--epochs', '1');
    expectClean(
      r,
      0,
      /all\.json was given alone: split at random \(seed 0, val 0\.15, test 0\.15\) into 8 training, 1 validation and 1 test images/,
    );
    const root = runDir(r)!;
    const log = readJsonl(readFileSync(join(root, 'log.jsonl'), 'utf8'));
    expect(log.find((e) => e.event === 'data-split')).toMatchObject({ seed: 0 });
    // bmc eval splits the file the same way (same seed) and its report says so.
    const ev = await bmc(['eval', root], 300_000);
    expectClean(ev, 0, /test: AP /);
    expect(readFileSync(join(root, 'report', 'report.md'), 'utf8')).toMatch(
      /data split: .*all\.json was given alone/,
    );
  }, 300_000);
});

describe('bmc detect on bad inputs (issue 22, items 8, 9, 10)', () => {
  it('8: a FIFO or a symlink loop given as input is named as such, without opening it', async () => {
    expectClean(
      await bmc(['detect', '-m', model, C.fifo.png, '--out', join(dir, 'd1')], 30_000),
      2,
      /pipe\.png: not a regular file or folder \(a FIFO/,
    );
    expectClean(
      await bmc(['detect', '-m', model, C.loop.png, '--out', join(dir, 'd1')]),
      2,
      /loop-a\.png: symlink loop/,
    );
  });

  it('9: a 1x1 image gives only boxes of positive area', async () => {
    const out = join(dir, 'd9');
    const r = await bmc(['detect', '-m', model, C.detect.one, '--out', out, '--no-progress']);
    expectClean(r, 0);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Array<{ bbox: number[] }>;
    expect(results.length).toBeGreaterThan(0);
    for (const d of results) {
      expect(d.bbox[2]).toBeGreaterThan(0);
      expect(d.bbox[3]).toBeGreaterThan(0);
    }
  });

  it('10: --resize above the maximum and a tile overlap above the tile are usage errors, at once', async () => {
    const big = await bmc([
      'detect',
      '-m',
      model,
      C.detect.smear,
      '--resize',
      '100000',
      '--out',
      join(dir, 'd10'),
    ]);
    expectClean(big, 2, /--resize <px>' argument '100000' is invalid\. expected a number in \[0, 8192\]/);
    const tiles = await bmc([
      'detect',
      '-m',
      model,
      C.detect.smear,
      '--tile',
      '32',
      '--tile-overlap',
      '128',
      '--out',
      join(dir, 'd10'),
    ]);
    expectClean(tiles, 2, /--tile 32 --tile-overlap 128: the overlap must be smaller than the tile/);
    expect(tiles.all).not.toMatch(/skipped/);
  });

  // Root ignores file permissions, so a read-only mount stands in for a folder one cannot write.
  const mount = (target: string, options: string) => {
    mkdirSync(target, { recursive: true });
    const r = spawnSyncQuiet('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target]);
    return r === 0;
  };
  const umount = (target: string) => spawnSyncQuiet('umount', [target]);

  it('10: a read-only output folder is reported as such, by name (exit 2)', async (ctx) => {
    const ro = join(dir, 'ro');
    if (!mount(ro, 'ro,size=64k')) {
      console.log('skipped: cannot mount a tmpfs here (needs root)');
      ctx.skip();
    }
    try {
      const r = await bmc(['detect', '-m', model, C.detect.smear, '--out', ro, '--no-progress']);
      expectClean(r, 2, new RegExp(`cannot write ${ro}: read-only file system \\(EROFS\\)`));
      expect(r.all).not.toMatch(/ENOENT/);
    } finally {
      umount(ro);
    }
  });

  it('10: a full disk stops the run with one message and leaves no temporary files (exit 1)', async (ctx) => {
    const full = join(dir, 'full');
    if (!mount(full, 'size=64k')) {
      console.log('skipped: cannot mount a tmpfs here (needs root)');
      ctx.skip();
    }
    try {
      // 40 copies of a 512 px smear: their annotated PNGs outgrow 64 KiB after a few images.
      const images = join(dir, 'many');
      mkdirSync(images, { recursive: true });
      const png = await raw(
        512,
        512,
        new Uint8Array(512 * 512 * 3).map((_, i) => (i * 2654435761) % 251),
      )
        .png()
        .toBuffer();
      for (let k = 0; k < 40; k++) writeFileSync(join(images, `s${k}.png`), png);
      const r = await bmc(['detect', '-m', model, images, '--out', full, '--no-progress'], 120_000);
      expectClean(r, 1, new RegExp(`cannot write ${full}: no space left on device \\(ENOSPC\\)`));
      expect(r.all).not.toMatch(/skipped/);
      expect(r.all.match(/ENOSPC/g)).toHaveLength(1);
      expect(leftovers(full)).toEqual([]);
    } finally {
      umount(full);
    }
  }, 180_000);
});

function spawnSyncQuiet(cmd: string, args: string[]): number | null {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status;
}
