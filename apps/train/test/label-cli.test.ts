import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCoco } from '@bmc/data';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBmc as bmc, STACK } from './bmc-cli.js';
import { expectBatchAgrees, MODEL, type NamedBox, TXL } from './label-batch.js';

/**
 * The labelling loop the way a lab runs it: `bmc label propose / import / status / metric / rank`
 * through bin/bmc.mjs, with the shipped model on real TXL-PBC smears.
 */
const ready = existsSync(MODEL) && existsSync(TXL);

let dir: string;
let names: string[];
beforeAll(async () => {
  if (!ready) return;
  dir = await mkdtemp(join(tmpdir(), 'bmc-label-'));
  names = (await readdir(TXL)).sort().slice(0, 5);
  await mkdir(join(dir, 'smears'));
  for (const n of names) await symlink(join(TXL, n), join(dir, 'smears', n));
  // Round 0 labels the first three; the other two stay in the pool.
  await mkdir(join(dir, 'first'));
  for (const n of names.slice(0, 3)) await symlink(join(TXL, n), join(dir, 'first', n));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!ready)('bmc label (shipped model, TXL-PBC smears)', () => {
  it('propose writes the detector boxes at its operating point in all five formats, which agree', async () => {
    const r = await bmc([
      'label',
      'propose',
      '-m',
      MODEL,
      join(dir, 'first'),
      '--out',
      join(dir, 'batch-00'),
      '--ls-root',
      dir,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 images, \d+ proposed boxes/);
    const b = join(dir, 'batch-00');
    const manifest = JSON.parse(await readFile(join(b, 'batch.json'), 'utf8'));
    expect(manifest.modelVersion).toMatch(/^model\.onnx@[0-9a-f]{12} \(bmc /);

    // Independent reference: bmc detect's results.json at the same threshold.
    const d = await bmc([
      'detect',
      '-m',
      MODEL,
      join(dir, 'first'),
      '--out',
      join(dir, 'detect'),
      '--no-annotate',
    ]);
    expect(d.code, d.stderr).toBe(0);
    const results = JSON.parse(await readFile(join(dir, 'detect', 'results.json'), 'utf8'));
    const imgs = JSON.parse(await readFile(join(dir, 'detect', 'images.json'), 'utf8')).images;
    const ref: Record<string, NamedBox[]> = {};
    for (const im of imgs) ref[im.file_name.split('/').pop()] = [];
    for (const x of results)
      if (x.score >= manifest.threshold) {
        const [X, Y, W, H] = x.bbox;
        const name = imgs
          .find((i: { id: number }) => i.id === x.image_id)
          .file_name.split('/')
          .pop();
        ref[name]!.push(['cell', X, Y, X + W, Y + H]);
      }
    expect(Object.values(ref).flat().length).toBeGreaterThan(10);

    await expectBatchAgrees(b, ref);
    const tasks = JSON.parse(await readFile(join(b, 'labelstudio.json'), 'utf8'));
    expect(tasks[0].data.image).toBe(`/data/local-files/?d=batch-00/images/${names[0]}`);
  }, 120_000);

  it('import merges corrections, is idempotent, and reports a conflicting edit without writing', async () => {
    const b = join(dir, 'batch-00');
    // The hematologist deletes the first proposed box of the first image in Label Studio.
    const tasks = JSON.parse(await readFile(join(b, 'labelstudio.json'), 'utf8'));
    const total = tasks.reduce(
      (s: number, t: { predictions: { result: unknown[] }[] }) => s + t.predictions[0]!.result.length,
      0,
    );
    tasks.forEach(
      (t: { id: number; predictions: { result: unknown[] }[]; annotations: unknown }, i: number) => {
        t.id = i + 1;
        t.annotations = [
          { id: 1, was_cancelled: false, result: t.predictions[0]!.result.slice(i === 0 ? 1 : 0) },
        ];
      },
    );
    await writeFile(join(b, 'export.json'), JSON.stringify(tasks));
    const labels = join(dir, 'labels');
    const a = await bmc(['label', 'import', join(b, 'export.json'), '--into', labels]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/batch batch-00, round 0\): 3 added, 0 replaced, 0 unchanged/);
    const ds = await readCoco(join(labels, 'dataset.json'));
    expect(ds.images.reduce((s, im) => s + im.labels.length, 0)).toBe(total - 1);

    const again = await bmc(['label', 'import', join(b, 'export.json'), '--into', labels]);
    expect(again.stdout).toMatch(/0 added, 0 replaced, 3 unchanged/);
    const before = await readFile(join(labels, 'dataset.json'), 'utf8');

    // The CVAT file still has the deleted box: a conflict for the first image only.
    const c = await bmc(['label', 'import', join(b, 'cvat.xml'), '--into', labels]);
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('1 image(s) already labelled differently; nothing imported');
    expect(c.stderr).toContain(`${names[0]}: labelled in batch batch-00 (round 0)`);
    expect(c.stderr).not.toMatch(STACK);
    expect(await readFile(join(labels, 'dataset.json'), 'utf8')).toBe(before);

    const bad = join(b, 'broken.xml');
    await writeFile(bad, '<annotations><image name="x.jpg" width="4" height="4"></annotations>');
    const m = await bmc(['label', 'import', bad, '--into', labels]);
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/broken\.xml: line \d+, column \d+: malformed XML/);
    expect(m.stderr).not.toMatch(STACK);

    // --replace takes the new labels on purpose; a VOC folder inside the batch belongs to the batch.
    const voc = await bmc(['label', 'import', join(b, 'voc'), '--into', labels, '--replace']);
    expect(voc.code, voc.stderr).toBe(0);
    expect(voc.stdout).toMatch(/\(batch batch-00, round 0\): 0 added, 3 replaced, 0 unchanged/);
    const ledger = JSON.parse(await readFile(join(labels, 'ledger.json'), 'utf8'));
    expect(ledger.images[names[0]!].source).toBe(join(b, 'voc'));
    expect(ledger.rounds).toEqual([{ round: 0, batches: ['batch-00'] }]);

    const chk = await bmc(['data', 'check', join(labels, 'dataset.json')]);
    expect(chk.code, chk.stdout).toBe(0);
  }, 120_000);

  it('rank picks from the unlabelled pool only, records its terms; status counts what is left', async () => {
    const labels = join(dir, 'labels');
    const r = await bmc([
      'label',
      'rank',
      '-m',
      MODEL,
      join(dir, 'smears'),
      '--dataset',
      labels,
      '--top',
      '1',
      '--out',
      join(dir, 'batch-01'),
      '--format',
      'cvat,labelstudio',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('5 images, 3 labelled already, 2 to rank');
    const m = JSON.parse(await readFile(join(dir, 'batch-01', 'batch.json'), 'utf8'));
    expect(m.images).toHaveLength(1);
    expect(names.slice(3)).toContain(m.images[0].name);
    expect(m.images[0].acquisition.score).toBeCloseTo(
      m.images[0].acquisition.uncertainty + m.images[0].acquisition.disagreement,
      9,
    );
    expect(existsSync(join(dir, 'batch-01', 'voc'))).toBe(false);

    expect(
      (await bmc(['label', 'metric', labels, '--round', '0', '--ap50', '0.61', '--ap75', '0.2'])).code,
    ).toBe(0);
    const s = await bmc(['label', 'status', labels]);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toContain('3 labelled images');
    expect(s.stdout).toContain('2 unlabelled');
    expect(s.stdout).toMatch(/\n\s+0 {2}batch-00\s+3\s+\d+\s+3 {2}0\.610 {2}0\.200/);
    const bad = await bmc(['label', 'metric', labels, '--round', '4', '--ap50', '0.5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no round 4 (rounds: 0)');
  }, 120_000);
});
