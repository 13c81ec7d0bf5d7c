import { describe, expect, it } from 'vitest';
import { serviceDefaults } from '../src/server.js';

// The service's concurrency / threads defaults (measured: bench/measured/load-settings.json).
describe('serviceDefaults', () => {
  it('one single-threaded detection per core when neither is given', () => {
    expect(serviceDefaults({}, 2)).toEqual({ concurrency: 2, threads: 1 });
    expect(serviceDefaults({}, 8)).toEqual({ concurrency: 8, threads: 1 });
    expect(serviceDefaults({}, 1)).toEqual({ concurrency: 1, threads: 1 });
  });
  it('fills in the other from the cores when one is given', () => {
    expect(serviceDefaults({ concurrency: 1 }, 2)).toEqual({ concurrency: 1, threads: 2 });
    expect(serviceDefaults({ concurrency: 3 }, 2)).toEqual({ concurrency: 3, threads: 1 });
    expect(serviceDefaults({ threads: 2 }, 8)).toEqual({ concurrency: 4, threads: 2 });
    expect(serviceDefaults({ threads: 4 }, 2)).toEqual({ concurrency: 1, threads: 4 });
  });
  it('keeps both when both are given', () => {
    expect(serviceDefaults({ concurrency: 2, threads: 2 }, 2)).toEqual({ concurrency: 2, threads: 2 });
  });
});
