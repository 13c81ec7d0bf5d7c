import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { boxIou } from '@bmc/core';
import { readBmcMetadata } from '@bmc/export';
import { decodeToPixels, loadDetector } from '@bmc/infer';
import { modelPath } from '@bmc/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// `bmc export --int8` the way a user runs it, on @bmc/models' blood-smear detector and real
// smears (TXL-PBC): calibration on training images, parity on test images.
const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const REPO = new URL('../../../', import.meta.url).pathname;
const TXL = join(REPO, '../shared/data/txl-pbc/images');
const hasData = existsSync(join(TXL, 'train')) && existsSync(join(TXL, 'test'));
const dirs: string[] = [];
const tmp = (p: string) => {
  const d = mkdtempSync(join(tmpdir(), p));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const bmc = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 300_000 });

/** `n` files spread over a sorted folder listing. */
const spread = (dir: string, n: number) => {
  const all = readdirSync(dir).sort();
  return Array.from({ length: n }, (_, i) => join(dir, all[Math.floor((i * all.length) / n)]!));
};

/** IoU of two xyxy boxes (@bmc/core's torchvision-equal `boxIou`). */
const iou = (a: readonly number[], b: readonly number[]) => boxIou(a, b).data[0]!;

describe.skipIf(!hasData)('bmc export --int8 on the shipped blood-smear model', () => {
  let calib: string;
  let out: string;
  let run: ReturnType<typeof bmc>;

  beforeAll(() => {
    calib = join(tmp('bmc-int8-'), 'txl-calibration');
    mkdirSync(calib);
    for (const f of spread(join(TXL, 'train'), 16)) copyFileSync(f, join(calib, basename(f)));
    out = join(tmp('bmc-int8-out-'), 'blood-smear-int8.onnx');
    run = bmc('export', modelPath(), '--int8', '--calibration', calib, '--out', out);
  }, 300_000);

  it('writes a QDQ model whose metadata names the scheme and the calibration', () => {
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/calibration: 16 images/);
    expect(run.stdout).toMatch(/50 int8 convs/); // all 51 but the stem, on the RGB image
    const q = readFileSync(out);
    const meta = readBmcMetadata(q);
    expect(meta.quantization).toMatchObject({
      format: 'QDQ',
      calibration: { method: 'minmax', images: 16, source: 'txl-calibration' },
    });
    // Everything else describes the same detector as the float file.
    const float = readBmcMetadata(readFileSync(modelPath()));
    expect({ ...meta, quantization: undefined }).toEqual({ ...float, quantization: undefined });
    expect(q.length).toBeLessThan(0.35 * readFileSync(modelPath()).length);
  });

  it("finds the float model's confident cells on unseen test smears (IoU >= 0.9)", async () => {
    const f = await loadDetector(modelPath(), { threads: 1 });
    const q = await loadDetector(out, { threads: 1 });
    const threshold = f.meta.operatingPoint!.scoreThreshold;
    const ious: number[] = [];
    let countDiff = 0;
    let floatCount = 0;
    for (const file of spread(join(TXL, 'test'), 12)) {
      const px = await decodeToPixels(file);
      const a = (await f.detect(px)).detections.filter((d) => d.score >= threshold);
      const b = (await q.detect(px)).detections;
      for (const d of a) ious.push(Math.max(0, ...b.map((e) => iou(d.box, e.box))));
      floatCount += a.length;
      countDiff += Math.abs(a.length - b.filter((d) => d.score >= threshold).length);
    }
    await f.dispose();
    await q.dispose();
    ious.sort((x, y) => x - y);
    const matched = ious.filter((v) => v >= 0.9).length / ious.length;
    const median = ious[ious.length >> 1]!;
    console.log(
      `int8 vs float: ${ious.length} confident float boxes, ${(100 * matched).toFixed(1)}% matched at IoU >= 0.9, ` +
        `median IoU ${median.toFixed(3)}, counts at the operating point differ by ${countDiff} of ${floatCount}`,
    );
    expect(ious.length).toBeGreaterThan(100);
    // uint8 activations move a box delta by up to one step of its tensor's scale (about 1/255 of
    // the range, 2-3 % of a side), so a one-step box still has IoU > 0.9; scores near the
    // operating point and NMS ties swap a few boxes, hence 90 % and not all.
    expect(matched).toBeGreaterThanOrEqual(0.9);
    expect(median).toBeGreaterThanOrEqual(0.97);
    expect(countDiff).toBeLessThanOrEqual(Math.max(3, 0.05 * floatCount));
  }, 300_000);

  it('bmc detect runs the INT8 file', () => {
    const dir = tmp('bmc-int8-detect-');
    const r = bmc(
      'detect',
      ...spread(join(TXL, 'test'), 2),
      '-m',
      out,
      '--out',
      join(dir, 'o'),
      '--no-progress',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(
      (JSON.parse(readFileSync(join(dir, 'o', 'results.json'), 'utf8')) as unknown[]).length,
    ).toBeGreaterThan(0);
  }, 300_000);
});

describe('bmc export --int8 with a bad calibration folder', () => {
  const cases: Array<[string, () => string, RegExp]> = [
    [
      'missing',
      () => join(tmp('bmc-int8-bad-'), 'no-such-folder'),
      /calibration folder .*no-such-folder does not exist/,
    ],
    ['empty', () => tmp('bmc-int8-empty-'), /calibration folder .*bmc-int8-empty-\w+ has no images/],
    [
      'no images, only other files',
      () => {
        const d = tmp('bmc-int8-txt-');
        writeFileSync(join(d, 'notes.txt'), 'not an image');
        return d;
      },
      /bmc-int8-txt-\w+ has no images/,
    ],
    [
      'an unreadable image',
      () => {
        const d = tmp('bmc-int8-corrupt-');
        // A PNG signature and then nothing: a truncated file.
        writeFileSync(
          join(d, 'field.png'),
          Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]),
        );
        return d;
      },
      /calibration image .*field\.png: /,
    ],
  ];
  for (const [what, make, message] of cases) {
    it(`${what}: exit 2, names it, writes nothing`, () => {
      const folder = make();
      const outDir = tmp('bmc-int8-nothing-');
      const r = bmc(
        'export',
        modelPath(),
        '--int8',
        '--calibration',
        folder,
        '--out',
        join(outDir, 'q.onnx'),
      );
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(readdirSync(outDir)).toEqual([]);
    });
  }

  it('--int8 without --calibration, and --calibration without --int8: exit 2', () => {
    const a = bmc('export', modelPath(), '--int8');
    expect(a.status).toBe(2);
    expect(a.stderr).toMatch(/--int8 needs --calibration/);
    const b = bmc('export', modelPath(), '--calibration', tmpdir());
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/--calibration needs --int8/);
  });
});
