import { describe, expect, it } from 'vitest';
import { serviceDefaults } from '../src/server.js';

// The service's concurrency / threads defaults (measured: bench/measured/load-settings.json).
describe('serviceDefaults', () => {
  it('one detection at a time on every core when neither is given', () => {
    expect(serviceDefaults({}, 2)).toEqual({ concurrency: 1, threads: 2 });
    expect(serviceDefaults({}, 8)).toEqual({ concurrency: 1, threads: 8 });
  });
  it('splits the cores between concurrent detections', () => {
    expect(serviceDefaults({ concurrency: 2 }, 2)).toEqual({ concurrency: 2, threads: 1 });
    expect(serviceDefaults({ concurrency: 4 }, 8)).toEqual({ concurrency: 4, threads: 2 });
    expect(serviceDefaults({ concurrency: 3 }, 2)).toEqual({ concurrency: 3, threads: 1 });
  });
  it('keeps what is given', () => {
    expect(serviceDefaults({ threads: 1 }, 8)).toEqual({ concurrency: 1, threads: 1 });
    expect(serviceDefaults({ concurrency: 2, threads: 2 }, 2)).toEqual({ concurrency: 2, threads: 2 });
  });
});
