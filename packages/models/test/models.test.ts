import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { verifyCheckpoint } from '@bmc/export';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  checkpointDir,
  DEFAULT_MODEL,
  listModels,
  modelInfo,
  modelNames,
  modelPath,
  UnknownModelError,
} from '../src/index.js';

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const bytesUnder = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true }).reduce(
    (n, e) => n + (e.isDirectory() ? bytesUnder(join(dir, e.name)) : statSync(join(dir, e.name)).size),
    0,
  );

describe('@bmc/models', () => {
  it('ships the default model, listed with its files', () => {
    expect(modelNames()).toContain(DEFAULT_MODEL);
    const m = listModels().find((x) => x.name === DEFAULT_MODEL)!;
    expect(m.onnx).toBe(modelPath());
    expect(m.checkpoint).toBe(checkpointDir());
    expect(m.classes).toEqual(['cell']);
    expect(existsSync(modelPath())).toBe(true);
  });

  it('the ONNX file is the one model.json describes, and onnxruntime-node runs it', async () => {
    const info = modelInfo() as unknown as { files: Record<string, { bytes: number; sha256: string }> };
    expect(statSync(modelPath()).size).toBe(info.files['model.onnx']!.bytes);
    expect(sha256(modelPath())).toBe(info.files['model.onnx']!.sha256);
    const session = await ort.InferenceSession.create(modelPath(), { intraOpNumThreads: 1 });
    try {
      expect(session.inputNames).toHaveLength(1);
      const side = 64;
      const input = new ort.Tensor('float32', new Float32Array(3 * side * side), [1, 3, side, side]);
      const out = await session.run({ [session.inputNames[0]!]: input });
      // Every output is finite on a blank image.
      for (const t of Object.values(out)) {
        for (const v of t.data as Float32Array) expect(Number.isFinite(v)).toBe(true);
      }
    } finally {
      await session.release();
    }
  });

  it('the checkpoint is a complete bmc checkpoint (checksums verified by @bmc/export) without optimizer state', () => {
    const manifest = verifyCheckpoint(checkpointDir());
    const files = manifest.files.map((f) => f.path).sort();
    expect(files).toEqual(['model.json', 'state.json', 'weights.bin']);
    expect(readdirSync(checkpointDir()).sort()).toEqual(['manifest.json', ...files]);
  });

  it('stays well under 20 MB', () => {
    expect(bytesUnder(join(modelPath(), '..', '..'))).toBeLessThan(12 * 2 ** 20);
  });

  it('an unknown name or a path is an input error that lists the shipped names', () => {
    for (const bad of ['nope', '../blood-smear', 'blood-smear/../x', '']) {
      const err = (() => {
        try {
          modelPath(bad);
        } catch (e) {
          return e;
        }
      })() as UnknownModelError;
      expect(err).toBeInstanceOf(UnknownModelError);
      expect(err.kind).toBe('input');
      expect(err.message).toContain(`ships: ${modelNames().join(', ')}`);
    }
    expect(() => checkpointDir('nope')).toThrow(UnknownModelError);
  });
});
