import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadAverage, machineRecord } from '../src/index.mjs';

const lscpu = (() => {
  try {
    return execFileSync('lscpu', { encoding: 'utf8' });
  } catch {
    return '';
  }
})();

describe('machineRecord', () => {
  it("names lscpu's model and flags, the cores, Node and the load", () => {
    const m = machineRecord();
    expect(m.cores).toBe(availableParallelism());
    expect(m.node).toBe(process.version);
    expect(m.loadavgAtStart).toHaveLength(3);
    for (const l of [...m.loadavgAtStart, ...loadAverage()])
      expect(Math.round(l * 100)).toBeCloseTo(l * 100, 6);
    if (lscpu) {
      // The same line lscpu prints, and every x86-64 CPU has SSE2.
      expect(lscpu).toContain(m.cpu);
      expect(m.flags.split(' ')).toContain('sse2');
    } else {
      expect(m).toMatchObject({ cpu: 'unknown', flags: '' });
    }
  });
});
