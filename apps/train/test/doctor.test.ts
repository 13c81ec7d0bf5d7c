import { describe, expect, it } from 'vitest';
import { type DoctorReport, doctor, formatDoctor, MALLOC_TUNING } from '../src/commands/doctor.js';

describe('bmc doctor', () => {
  it('reports the machine, backend, engine and whether malloc was tuned at start-up', async () => {
    const r = await doctor();
    expect(r.cpu.cores).toBeGreaterThan(0);
    expect(r.node).toBe(process.version);
    expect(r.mallocTuned).toBe(Object.keys(MALLOC_TUNING).every((k) => process.env[k] !== undefined));
    const text = formatDoctor(r);
    expect(text).toMatch(/^node v20/);
    expect(text).toMatch(/engine: /);
  }, 60_000);

  it('tells a Linux user without the tuning how to start with it, and says n/a elsewhere', () => {
    const base: DoctorReport = {
      node: 'v20.0.0',
      platform: 'linux x64',
      cpu: { model: 'x', cores: 2, features: ['avx2'] },
      memoryGiB: 8,
      packages: {},
      backend: { error: 'none' },
      cuda: { nvidiaSmi: false, libcudart11: false, libcudnn8: false, usable: false, missing: ['driver'] },
      engine: 'wasm',
      mallocTuned: false,
    };
    expect(formatDoctor(base)).toContain('glibc malloc tuning: off (CPU training of R50 models');
    expect(formatDoctor(base)).toContain('MALLOC_MMAP_THRESHOLD_=33554432');
    expect(formatDoctor({ ...base, mallocTuned: true })).toContain('glibc malloc tuning: on');
    expect(formatDoctor({ ...base, platform: 'darwin arm64' })).toContain('glibc malloc tuning: n/a');
  });
});
