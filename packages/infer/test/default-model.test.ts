import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { errorKind } from '@bmc/core';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerInferCommands } from '../src/commands.js';
import { resolveModel } from '../src/default-model.js';
import { TINY_MODEL, writeSmear } from './helpers.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('the model detect / serve use without -m', () => {
  it('-m wins; else the resolver, announced in one line; without a resolver a usage error', async () => {
    const said: string[] = [];
    const say = (l: string) => said.push(l);
    let asked = 0;
    const resolver = async () => {
      asked++;
      return { path: '/models/x.onnx', name: 'x from @bmc/models' };
    };
    expect(await resolveModel('mine.onnx', resolver, say)).toBe('mine.onnx');
    expect(asked).toBe(0);
    expect(said).toEqual([]);
    expect(await resolveModel(undefined, resolver, say)).toBe('/models/x.onnx');
    expect(said).toEqual(['model: x from @bmc/models (no -m given): /models/x.onnx']);
    const err = await resolveModel(undefined, undefined, say).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('usage');
    expect((err as Error).message).toMatch(/no model: pass -m <model\.onnx>/);
  });

  it('bmc detect without -m runs the resolved model on the images', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bmc-default-model-'));
    dirs.push(dir);
    await writeSmear(join(dir, 'images'), 'a.png', 1);
    const program = new Command().exitOverride();
    registerInferCommands(program, {
      defaultModel: async () => ({ path: TINY_MODEL, name: 'tiny fixture' }),
    });
    const writes: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => {
      writes.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      await program.parseAsync(
        ['detect', join(dir, 'images'), '--out', join(dir, 'out'), '--no-progress', '--threads', '1'],
        { from: 'user' },
      );
    } finally {
      process.stderr.write = write;
    }
    expect(writes.join('')).toContain(`model: tiny fixture (no -m given): ${TINY_MODEL}`);
    const { readFile } = await import('node:fs/promises');
    const results = JSON.parse(await readFile(join(dir, 'out', 'results.json'), 'utf8'));
    expect(Array.isArray(results)).toBe(true);
  });
});
