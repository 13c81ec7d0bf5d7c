import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePth } from '@bmc/backbone';
import { loadCheckpoint } from '@bmc/export';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import { readJsonl } from '../src/run/jsonl-log.js';
import { listCheckpoints, runPaths } from '../src/run/run-dir.js';
import { toDetectorConfig } from '../src/train/detector.js';
import { initFromDetector } from '../src/train/init-weights.js';
import { setUpEngine, train } from '../src/train/trainer.js';
import { smallSet } from './small-config.js';

const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;
const FIXTURES = new URL('../../../packages/backbone/test/fixtures/', import.meta.url).pathname;
const R18_PTH = join(FIXTURES, 'resnet18_w16.pth');
// 1/16 of ResNet18's widths: the committed torchvision fixture, so the backbone file fits this model.
const SMALL = [
  ...smallSet(64, 4, 2),
  'optim.batchSize=2',
  'run.evalEvery=0',
  'model.backbone.widthMultiplier=0.0625',
  'model.backbone.frozenBatchNorm=true',
];
const sets = (extra: string[] = []) => [...SMALL, ...extra].flatMap((s) => ['--set', s]);

function bmc(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 240_000 });
  const runDir = /run folder: (.+)/.exec(r.stdout)?.[1];
  return { code: r.status, out: r.stdout, err: r.stderr, runDir };
}

/** A checkpoint's weights by name, as plain arrays. */
async function checkpointWeights(dir: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const c = await loadCheckpoint(dir);
  const out = new Map(
    c.model.weights.map((w) => [
      w.originalName,
      { shape: w.shape as number[], data: w.read().dataSync() as Float32Array },
    ]),
  );
  // model.dispose() leaves the weights of layers shared across levels (the head's): free them all.
  const variables = c.model.weights.map((w) => w.read());
  c.model.dispose();
  for (const v of variables) if (!v.isDisposed) v.dispose();
  if (c.optimizer) tf.dispose(Object.values(c.optimizer.slots));
  return out;
}

/** torch OIHW -> tfjs HWIO, written out here so the test does not lean on the importer's own conversion. */
function hwio(data: Float32Array, [o, i, h, w]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let a = 0; a < o!; a++)
    for (let b = 0; b < i!; b++)
      for (let y = 0; y < h!; y++)
        for (let x = 0; x < w!; x++)
          out[((y * w! + x) * i! + b) * o! + a] = data[((a * i! + b) * h! + y) * w! + x]!;
  return out;
}

const newest = (root: string) => listCheckpoints(runPaths(root))[0]!.dir;

/** `bmc train` for one epoch of the tiny preset into `runs`, with SMALL plus `extra` settings, then `flags`. */
const trainOneEpoch = (runs: string, extra: string[], ...flags: string[]) =>
  bmc([
    'train',
    '--preset',
    'tiny',
    '--epochs',
    '1',
    '--runs',
    runs,
    '--no-progress',
    ...sets(extra),
    ...flags,
  ]);

/** A torch OIHW kernel of a .pth file in tfjs's HWIO order. */
const pthKernel = (pth: ReturnType<typeof parsePth>, key: string) =>
  hwio(pth.getFloat32(key), pth.entries.get(key)!.shape);

describe('model.backbone.weights through bmc train', () => {
  const runs = mkdtempSync(join(tmpdir(), 'bmc-bbw-'));

  it('loads a torchvision .pth before the first step; a frozen backbone still holds its tensors at the end (2 replicas)', async () => {
    // Data-parallel replicas step through the same optimizer, so the freeze holds there too.
    const r = trainOneEpoch(
      runs,
      [`model.backbone.weights=${R18_PTH}`, 'run.replicas=2'],
      '--freeze-backbone-steps',
      '100',
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/data-parallel: 2 replicas/);
    expect(r.out).toMatch(
      /backbone weights: loaded 100 tensors from .*resnet18_w16\.pth \(pth\); ignored fc\.bias, fc\.weight \(the ImageNet classifier\) and 20 num_batches_tracked counters/,
    );
    const pth = parsePth(new Uint8Array(readFileSync(R18_PTH)));
    const saved = await checkpointWeights(newest(r.runDir!));
    for (const key of ['conv1.weight', 'layer4.1.conv2.weight', 'layer2.0.downsample.0.weight']) {
      const name = `backbone.body.${key.replace('.weight', '')}/kernel`;
      expect(saved.get(name)!.data, name).toEqual(pthKernel(pth, key));
    }
    // torchvision's BatchNorm terms land in bmc's frozen BatchNorm.
    expect(saved.get('backbone.body.bn1/moving_variance')!.data).toEqual(pth.getFloat32('bn1.running_var'));
    expect(saved.get('backbone.body.layer3.1.bn2/gamma')!.data).toEqual(
      pth.getFloat32('layer3.1.bn2.weight'),
    );
    const log = readJsonl(readFileSync(join(r.runDir!, 'log.jsonl'), 'utf8'));
    expect(log.find((e) => e.event === 'backbone-weights')).toMatchObject({ format: 'pth', loaded: 100 });
  }, 300_000);

  it('a ResNet18 checkpoint in a ResNet50 config exits 2 naming the mismatching keys, no stack', () => {
    const r = trainOneEpoch(runs, [
      `model.backbone.weights=${R18_PTH}`,
      'model.backbone.depth=50',
      'model.backbone.widthMultiplier=0.03125',
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^bmc: .*resnet18_w16\.pth: shape mismatch for \d+ weight\(s\), \d+ missing/m);
    expect(r.err).toMatch(/layer1\.0\.conv1\.weight: torch shape \[4,4,3,3\] does not fit/);
    expect(r.err).toMatch(/\.\.\. and \d+ more/);
    expect(r.err).not.toMatch(/^\s+at /m);
  }, 300_000);
});

describe('bmc train --init', () => {
  const runs = mkdtempSync(join(tmpdir(), 'bmc-init-'));
  let source = '';

  it('a 1-class run initialises a multi-class run: classifier re-initialised, the rest loaded, logged', async () => {
    const a = trainOneEpoch(runs, []);
    expect(a.code, a.err).toBe(0);
    source = a.runDir!;
    // classAgnostic=false: the synthetic smears' six cell types; backbone frozen for the whole run.
    const b = trainOneEpoch(
      runs,
      ['data.classAgnostic=false'],
      '--init',
      source,
      '--freeze-backbone-steps',
      '100',
    );
    expect(b.code, b.err).toBe(0);
    expect(b.out).toContain(`init from ${join(source, 'best')}:`);
    expect(b.out).toMatch(
      /\d+ tensors loaded, 2 re-initialised \(head\.classification_head\.cls_logits\/kernel, head\.classification_head\.cls_logits\/bias\), 0 skipped; class count differs \(1 -> 6 classes\)/,
    );
    const event = readJsonl(readFileSync(join(b.runDir!, 'log.jsonl'), 'utf8')).find(
      (e) => e.event === 'init',
    )!;
    expect(event.reinitialised).toEqual([
      'head.classification_head.cls_logits/kernel',
      'head.classification_head.cls_logits/bias',
    ]);
    expect(event.skipped).toEqual([]);
    expect((event.loaded as string[]).length).toBeGreaterThan(100);
    expect(event.loaded).toContain('backbone.fpn.inner_blocks.0.0/kernel');
    expect(event.loaded).toContain('head.regression_head.bbox_reg/kernel');
    // The frozen backbone still holds run A's weights bit for bit.
    const before = await checkpointWeights(join(source, 'best'));
    const after = await checkpointWeights(newest(b.runDir!));
    const backbone = [...before.keys()].filter((k) => k.startsWith('backbone.body.'));
    expect(backbone.length).toBeGreaterThan(50);
    for (const k of backbone) expect(after.get(k)!.data, k).toEqual(before.get(k)!.data);
  }, 600_000);

  it('loads exactly the source weights and gives the classifier the prior-probability bias', async () => {
    const config = loadConfig({ preset: 'tiny', set: [...SMALL] });
    await setUpEngine(config.run, () => {});
    const detector = buildDetector(toDetectorConfig(config, 3));
    const lines: string[] = [];
    const events: Array<Record<string, unknown>> = [];
    const tensors = tf.memory().numTensors;
    const report = await initFromDetector(detector.model, source, {
      say: (l) => lines.push(l),
      log: { write: (e) => events.push(e) },
    });
    expect(tf.memory().numTensors).toBe(tensors); // nothing of the source checkpoint stays behind
    const saved = await checkpointWeights(join(source, 'best'));
    for (const w of detector.model.weights) {
      const name = w.originalName;
      if (name.includes('cls_logits')) continue;
      expect(w.read().dataSync(), name).toEqual(saved.get(name)!.data);
    }
    const bias = detector.model.weights.find((w) => w.originalName.endsWith('cls_logits/bias'))!;
    // RetinaNet's prior: p = 0.01, bias = -log((1 - p) / p), for 9 anchors x 3 classes.
    const prior = -Math.log(0.99 / 0.01);
    const values = Array.from(bias.read().dataSync());
    expect(values).toHaveLength(27);
    for (const v of values) expect(v).toBeCloseTo(prior, 5);
    expect(report.reinitialised).toHaveLength(2);
    expect(lines[0]).toMatch(/1 -> 3 classes/);
    expect(events[0]).toMatchObject({ event: 'init', from: source });
    detector.dispose();
  }, 300_000);

  it('an architecture mismatch exits 2 naming the first mismatching tensors', () => {
    const r = trainOneEpoch(runs, ['model.backbone.depth=34'], '--init', source);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^bmc: --init .*: the checkpoint's architecture differs from this config/m);
    expect(r.err).toMatch(/backbone\.body\.layer1\.2\.conv1\/kernel: not in the checkpoint/);
    // What would match: the source run's depth.
    expect(r.err).toMatch(/The checkpoint was trained with: --set model\.backbone\.depth=18\s*$/m);
    expect(r.err).not.toMatch(/^\s+at /m);
  }, 300_000);

  it('an unknown model name or a missing folder exits 2 with a clear message', () => {
    // Whatever @bmc/models ships (if it is installed at all), this name is not among them.
    const name = bmc(['train', '--preset', 'tiny', '--runs', runs, ...sets(), '--init', 'no-such-model']);
    expect(name.code).toBe(2);
    expect(name.err).toMatch(/^bmc: unknown model name no-such-model; known: /m);
    const missing = bmc(['train', '--preset', 'tiny', '--runs', runs, ...sets(), '--init', './no-such-run']);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--init \.\/no-such-run: no such run or checkpoint folder/);
  }, 300_000);
});

describe('model.backbone.freezeSteps', () => {
  it('backbone bit-identical for the first N steps (resume included), trained after; the head trains throughout', async () => {
    const runs = mkdtempSync(join(tmpdir(), 'bmc-freeze-'));
    // Two steps per epoch; AdamW with weight decay 0.05 (the tiny preset) would move any weight it saw.
    const config = loadConfig({
      preset: 'tiny',
      set: [...SMALL, 'optim.epochs=3', `model.backbone.weights=${R18_PTH}`, 'model.backbone.freezeSteps=3'],
    });
    const quiet = () => {};
    const first = await train(config, { runsDir: runs, log: quiet, progress: false, maxSteps: 2 });
    first.detector.dispose();
    const initial = await checkpointWeights(newest(first.paths.root));
    const pth = parsePth(new Uint8Array(readFileSync(R18_PTH)));
    expect(initial.get('backbone.body.conv1/kernel')!.data).toEqual(pthKernel(pth, 'conv1.weight'));
    // Resume for one more step: step 3 is the last frozen one.
    const said: string[] = [];
    const second = await train(config, {
      resume: first.paths.root,
      log: (l) => said.push(l),
      progress: false,
      maxSteps: 1,
    });
    expect(said).toContain('backbone frozen (not updated, not decayed) until step 3');
    second.detector.dispose();
    const frozen = await checkpointWeights(newest(first.paths.root));
    const third = await train(config, { resume: first.paths.root, log: quiet, progress: false, maxSteps: 1 });
    third.detector.dispose();
    const trained = await checkpointWeights(newest(first.paths.root));
    const kernels = [...initial.keys()].filter(
      (k) => k.startsWith('backbone.body.') && k.endsWith('/kernel'),
    );
    expect(kernels.length).toBe(20);
    for (const k of kernels) expect(frozen.get(k)!.data, k).toEqual(initial.get(k)!.data);
    for (const k of kernels) expect(trained.get(k)!.data, k).not.toEqual(frozen.get(k)!.data);
    // The neck and the head train while the backbone is frozen.
    for (const k of ['backbone.fpn.inner_blocks.0.0/kernel', 'head.regression_head.bbox_reg/kernel'])
      expect(frozen.get(k)!.data, k).not.toEqual(initial.get(k)!.data);
  }, 600_000);
});
