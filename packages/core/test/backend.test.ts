import '@tensorflow/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { describeBackend, initBackend, parseBackendList } from '../src/backend.js';

afterEach(() => {
  delete process.env.BMC_BACKEND;
});

describe('initBackend', () => {
  it('falls through absent native packages to wasm, recording each reason in one line', async () => {
    // tfjs-node(-gpu) cannot install on this machine: their import fails, which must not crash.
    const choice = await initBackend();
    expect(choice.source).toBe('default');
    expect(choice.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    const [gpu, node, wasm] = choice.attempts;
    expect(gpu).toMatchObject({ name: 'tensorflow-gpu', ok: false });
    expect(node).toMatchObject({ name: 'tensorflow', ok: false });
    expect(gpu!.reason).toMatch(/tfjs-node-gpu/);
    expect(gpu!.reason).not.toMatch(/\n/);
    expect(wasm).toMatchObject({ name: 'wasm', ok: true });
    expect(describeBackend(choice)).toMatch(/backend: wasm/);
  });

  it('a broken native package (missing binding) is skipped, not thrown', async () => {
    const importModule = async (s: string) => {
      if (s.includes('tfjs-node')) {
        throw new Error('The specified module could not be found.\ntfjs_binding.node can not be found');
      }
      return import(s);
    };
    const choice = await initBackend({ preference: ['tensorflow', 'cpu'], importModule });
    expect(choice.name).toBe('cpu');
    expect(choice.attempts[0]!.reason).toBe('The specified module could not be found.');
  });

  it('a module that imports but registers nothing is reported', async () => {
    const choice = await initBackend({ preference: ['tensorflow', 'cpu'], importModule: async () => ({}) });
    expect(choice.attempts[0]!.reason).toMatch(/registered no 'tensorflow' backend/);
    expect(choice.name).toBe('cpu');
  });

  it('BMC_BACKEND overrides the order; the option overrides BMC_BACKEND', async () => {
    process.env.BMC_BACKEND = 'cpu';
    const fromEnv = await initBackend();
    expect([fromEnv.name, fromEnv.source]).toEqual(['cpu', 'env']);
    const fromOption = await initBackend({ preference: 'wasm' });
    expect([fromOption.name, fromOption.source]).toEqual(['wasm', 'option']);
  });

  it('throws with every reason when nothing works', async () => {
    await expect(initBackend({ preference: ['tensorflow'] })).rejects.toThrow(
      /no TensorFlow.js backend.*tensorflow:/,
    );
  });

  it('rejects unknown names in BMC_BACKEND', () => {
    expect(parseBackendList('wasm, cpu')).toEqual(['wasm', 'cpu']);
    expect(() => parseBackendList('webgpu')).toThrow(/unknown backend 'webgpu'/);
  });
});
