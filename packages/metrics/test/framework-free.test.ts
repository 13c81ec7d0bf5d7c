import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// The package must run where TensorFlow.js is absent (other frameworks, the browser without
// tfjs): no source file may import it; model-stats is duck-typed.
describe('framework-free', () => {
  it('no source file imports @tensorflow', () => {
    const dir = new URL('../src/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(10);
    const offenders = files.filter((f) =>
      /from\s+['"]@tensorflow\//.test(readFileSync(new URL(f, dir), 'utf8')),
    );
    expect(offenders).toEqual([]);
  });
});
