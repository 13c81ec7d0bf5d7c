import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, parseOverride } from '../src/config/load.js';

const tmp = mkdtempSync(join(tmpdir(), 'bmc-config-'));

describe('config loading', () => {
  it('thesis preset has the published schedule and design', () => {
    const c = loadConfig({ preset: 'thesis' });
    expect(c.model.backbone.depth).toBe(50);
    expect(c.model.neck).toMatchObject({ type: 'pan-attn', levels: [2, 3, 4, 5] });
    expect(c.model.head.iouBranch).toBe(true);
    expect(c.assigner.type).toBe('ota');
    expect(c.optim).toMatchObject({
      lr: 0.001,
      momentum: 0.9,
      weightDecay: 5e-4,
      epochs: 36,
      steps: [16, 28],
      batchSize: 16,
    });
    expect(c.loss).toMatchObject({ focalAlpha: 0.25, focalGamma: 2, box: 'giou' });
  });

  it('baseline is RetinaNet R50-FPN P3-P7 with MaxIoU', () => {
    const c = loadConfig({ preset: 'baseline' });
    expect(c.model.neck).toMatchObject({ type: 'fpn', levels: [3, 4, 5, 6, 7] });
    expect(c.model.head.iouBranch).toBe(false);
    expect(c.assigner.type).toBe('maxiou');
  });

  it('file, then --set, then flags override the preset', () => {
    const file = join(tmp, 'c.yaml');
    writeFileSync(file, 'preset: tiny\noptim:\n  lr: 0.05\n  epochs: 3\n');
    const c = loadConfig({
      file,
      set: ['optim.epochs=5', 'data.imageSize=320'],
      overrides: { assigner: { type: 'paa' } },
    });
    expect(c.preset).toBe('tiny');
    expect(c.optim.lr).toBe(0.05);
    expect(c.optim.epochs).toBe(5);
    expect(c.data.imageSize).toBe(320);
    expect(c.assigner.type).toBe('paa');
    expect(c.model.backbone.depth).toBe(18);
  });

  it('errors name the key', () => {
    expect(() => loadConfig({ set: ['optim.lr=-1'] })).toThrow(/optim\.lr: /);
    expect(() => loadConfig({ set: ['data.imageSize=500'] })).toThrow(
      /data\.imageSize: must be a multiple of 32/,
    );
    expect(() => loadConfig({ set: ['optim.lr_step=3'] })).toThrow(/optim: Unrecognized key/);
    expect(() => loadConfig({ preset: 'nope' })).toThrow(/unknown preset 'nope'/);
  });

  it('bad files are named', () => {
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, '{ "optim": ');
    expect(() => loadConfig({ file: bad })).toThrow(/config .*bad\.json is not valid JSON/);
    expect(() => loadConfig({ file: join(tmp, 'missing.yaml') })).toThrow(
      /cannot read config .*missing\.yaml: ENOENT/,
    );
  });

  it('parses --set values as YAML scalars and lists', () => {
    expect(parseOverride('optim.steps=[8, 11]')).toEqual({ optim: { steps: [8, 11] } });
    expect(parseOverride('model.head.iouBranch=false')).toEqual({ model: { head: { iouBranch: false } } });
    expect(() => parseOverride('novalue')).toThrow(/key\.path=value/);
  });
});

describe('prototype keys (issue 22)', () => {
  // Merging `{ __proto__: {...} }` with `out[k] = v` replaced the merged object's prototype, so the
  // strict schema never saw the key: the config loaded as if the key were not there.
  it.each([
    ['YAML', 'c.yaml', 'preset: tiny\n__proto__:\n  polluted: 1\n', '__proto__'],
    ['JSON', 'c.json', '{"preset": "tiny", "optim": {"__proto__": {"lr": 5}}}', 'optim.__proto__'],
    ['nested constructor', 'd.yaml', 'preset: tiny\nmodel:\n  constructor:\n    x: 1\n', 'model.constructor'],
    ['prototype', 'e.yaml', 'preset: tiny\nrun:\n  prototype: 1\n', 'run.prototype'],
  ])('rejects %s as an unknown key', (_what, name, text, at) => {
    const file = join(tmp, name);
    writeFileSync(file, text);
    expect(() => loadConfig({ file })).toThrow(new RegExp(`${at.replace('.', '\\.')}: unknown key`));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects them in --set paths and values', () => {
    expect(() => loadConfig({ preset: 'tiny', set: ['__proto__.x=1'] })).toThrow(/unknown key '__proto__'/);
    expect(() => loadConfig({ preset: 'tiny', set: ['optim={__proto__: {lr: 3}}'] })).toThrow(
      /optim\.__proto__: unknown key/,
    );
  });
});
