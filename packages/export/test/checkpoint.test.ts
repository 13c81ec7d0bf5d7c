import { createHash } from 'node:crypto';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckpointError,
  loadCheckpoint,
  restoreCheckpoint,
  saveCheckpoint,
  sha256Hex,
  verifyCheckpoint,
  writeDirAtomic,
} from '../src/index.js';
import { initTf, randomizeWeights, randomValues } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'bmc-export-ckpt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function smallModel(name = 'small'): tf.LayersModel {
  const x = tf.input({ shape: [8, 8, 3], name: `${name}_in` });
  let y = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: `${name}_conv` })
    .apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: `${name}_bn` }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.globalAveragePooling2d({ name: `${name}_gap` }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.dense({ units: 2, name: `${name}_fc` }).apply(y) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: y, name });
}

const state = {
  step: 1234,
  epoch: 7,
  lrSchedule: { iteration: 1234, lr: 1e-4, milestones: [16, 28] },
  rng: { seed: 42, counter: 99 },
  config: { preset: 'tiny', batchSize: 2 },
};

function slots(model: tf.LayersModel): Record<string, tf.Tensor> {
  return Object.fromEntries(
    model.trainableWeights.map((w, i) => {
      const shape = w.shape as number[];
      const n = shape.reduce((a, b) => a * b, 1);
      return [`${w.originalName}/velocity`, tf.tensor(randomValues(n, i + 5), shape)];
    }),
  );
}

function predict(model: tf.LayersModel): Float32Array {
  const y = tf.tidy(
    () => model.predict(tf.tensor(randomValues(2 * 8 * 8 * 3, 11), [2, 8, 8, 3])) as tf.Tensor,
  );
  const d = y.dataSync() as Float32Array;
  y.dispose();
  return d;
}

async function freshCheckpoint(name: string): Promise<{ dir: string; model: tf.LayersModel }> {
  const model = smallModel(name);
  randomizeWeights(model, 3);
  const s = slots(model);
  const dir = join(root, name);
  await saveCheckpoint(dir, {
    model,
    state,
    optimizer: { slots: s, config: { momentum: 0.9, weightDecay: 5e-4 } },
  });
  tf.dispose(Object.values(s));
  return { dir, model };
}

describe('checkpoints', () => {
  beforeAll(initTf);

  it('sha256Hex matches the FIPS 180-2 test vector for "abc"', () => {
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });

  it('round-trips model, weights, optimizer slots and training state exactly', async () => {
    const { dir, model } = await freshCheckpoint('roundtrip');
    const expected = predict(model);
    const saved = slots(model); // same seeds -> same values as saved
    const before = tf.memory().numTensors;

    const loaded = await loadCheckpoint(dir);
    expect(Array.from(predict(loaded.model))).toEqual(Array.from(expected));
    expect(loaded.state).toEqual(state);
    expect(loaded.optimizer!.config).toEqual({ momentum: 0.9, weightDecay: 5e-4 });
    for (const [name, t] of Object.entries(saved)) {
      expect(Array.from(loaded.optimizer!.slots[name]!.dataSync())).toEqual(Array.from(t.dataSync()));
    }
    // The manifest agrees with an independent hash of the files on disk.
    for (const f of loaded.manifest.files) {
      const bytes = readFileSync(join(dir, f.path));
      expect(f.bytes).toBe(statSync(join(dir, f.path)).size);
      expect(f.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
    expect(loaded.manifest.files.map((f) => f.path).sort()).toEqual(
      ['model.json', 'optimizer.bin', 'optimizer.json', 'state.json', 'weights.bin'].sort(),
    );
    tf.dispose(Object.values(loaded.optimizer!.slots));
    loaded.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(Object.values(saved));
    model.dispose();
  });

  it('replaces an existing checkpoint and leaves no temporary directories', async () => {
    const { dir, model } = await freshCheckpoint('replace');
    randomizeWeights(model, 77);
    await saveCheckpoint(dir, { model, state: { ...state, step: 2000 } });
    const loaded = await loadCheckpoint(dir);
    expect(loaded.state!.step).toBe(2000);
    expect(loaded.optimizer).toBeUndefined();
    expect(Array.from(predict(loaded.model))).toEqual(Array.from(predict(model)));
    expect(readdirSync(root).filter((n) => n.includes('.tmp-') || n.includes('.old-'))).toEqual([]);
    loaded.model.dispose();
    model.dispose();
  });

  it('a failed write leaves the previous checkpoint untouched', async () => {
    const { dir, model } = await freshCheckpoint('crash');
    const before = readFileSync(join(dir, 'manifest.json'), 'utf8');
    await expect(
      writeDirAtomic(dir, (tmp) => {
        writeFileSync(join(tmp, 'weights.bin'), 'partial');
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(readFileSync(join(dir, 'manifest.json'), 'utf8')).toBe(before);
    expect(verifyCheckpoint(dir).files.length).toBe(5);
    expect(readdirSync(root).filter((n) => n.includes('.tmp-'))).toEqual([]);
    model.dispose();
  });

  it('restores weights into a freshly built model of the same architecture', async () => {
    const { dir, model } = await freshCheckpoint('restore');
    const target = smallModel('restore');
    const res = await restoreCheckpoint(dir, target);
    expect(Array.from(predict(target))).toEqual(Array.from(predict(model)));
    expect(res.state).toEqual(state);
    tf.dispose(Object.values(res.optimizer!.slots));
    target.dispose();
    model.dispose();
  });
});

describe('checkpoint bad input', () => {
  beforeAll(initTf);

  it('a truncated weights file is detected before anything is loaded', async () => {
    const { dir, model } = await freshCheckpoint('truncated');
    const file = join(dir, 'weights.bin');
    truncateSync(file, statSync(file).size - 10);
    const before = tf.memory().numTensors;
    await expect(loadCheckpoint(dir)).rejects.toThrow(CheckpointError);
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      /weights\.bin is truncated: \d+ bytes on disk, \d+ in manifest\.json/,
    );
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  });

  it('a flipped byte is a checksum error', async () => {
    const { dir, model } = await freshCheckpoint('corrupt');
    const file = join(dir, 'optimizer.bin');
    const bytes = readFileSync(file);
    bytes[17] = bytes[17]! ^ 0xff;
    writeFileSync(file, bytes);
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      /optimizer\.bin is corrupted: SHA-256 [0-9a-f]{64} does not match/,
    );
    expect(() => verifyCheckpoint(dir)).toThrow(CheckpointError);
    model.dispose();
  });

  it('a directory without a manifest (unfinished save) is refused', async () => {
    const { dir, model } = await freshCheckpoint('nomanifest');
    rmSync(join(dir, 'manifest.json'));
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      /no manifest\.json \(not a checkpoint, or a save that did not finish\)/,
    );
    await expect(loadCheckpoint(join(root, 'does-not-exist'))).rejects.toThrow(CheckpointError);
    model.dispose();
  });

  it('weights of the wrong size (index and data disagree, checksums consistent) are refused', async () => {
    const { dir, model } = await freshCheckpoint('wrongsize');
    // Rewrite model.json so that the last weight (a 1-D vector) claims one more value, and
    // re-sign the manifest, as a buggy writer would: only the size check can catch it.
    const modelJson = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const last = modelJson.weights[modelJson.weights.length - 1];
    expect(last.shape).toHaveLength(1);
    last.shape = [last.shape[0] + 1];
    const text = JSON.stringify(modelJson);
    writeFileSync(join(dir, 'model.json'), text);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const entry = manifest.files.find((f: { path: string }) => f.path === 'model.json');
    entry.bytes = Buffer.byteLength(text);
    entry.sha256 = createHash('sha256').update(text).digest('hex');
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    await expect(loadCheckpoint(dir)).rejects.toThrow(
      /weights\.bin: the data holds \d+ bytes but its index describes \d+ bytes \(\d+ tensors\): weights of the wrong size/,
    );
    model.dispose();
  });

  it('restoring into a model whose weights have other shapes fails and leaves the model untouched', async () => {
    const { dir, model } = await freshCheckpoint('mismatch');
    const x = tf.input({ shape: [8, 8, 3], name: 'mismatch_in' });
    let y = tf.layers
      .conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'mismatch_conv' })
      .apply(x) as tf.SymbolicTensor;
    y = tf.layers.batchNormalization({ name: 'mismatch_bn' }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.globalAveragePooling2d({ name: 'mismatch_gap' }).apply(y) as tf.SymbolicTensor;
    y = tf.layers.dense({ units: 2, name: 'mismatch_fc' }).apply(y) as tf.SymbolicTensor;
    const other = tf.model({ inputs: x, outputs: y });
    const before = predict(other);
    await expect(restoreCheckpoint(dir, other)).rejects.toThrow(
      /'mismatch_conv\/kernel' has shape \[3,3,3,4\] in the checkpoint, \[3,3,3,6\] in the model/,
    );
    expect(Array.from(predict(other))).toEqual(Array.from(before));
    other.dispose();
    model.dispose();
  });
});
