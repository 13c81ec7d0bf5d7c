import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkReadmeTables, readResult, renderTables } from '../src/readme-tables.mjs';

const root = join(import.meta.dirname, '..', '..', '..');
const spec = JSON.parse(readFileSync(join(root, 'results', 'readme-tables.json'), 'utf8'));

describe('README tables come from committed results', () => {
  it('every figure in every marked README table has a result behind it', () => {
    expect(checkReadmeTables(root)).toEqual([]);
  });

  it('every result a table uses names the machine (CPU model, flags) and the load', () => {
    for (const t of spec.tables) {
      for (const row of t.rows) {
        for (const f of row.figures) {
          const r = readResult(root, f.result);
          expect(r.machine.flags, f.result).toMatch(/\bsse2\b/);
          expect(
            r.rows.some((x) => x.name === f.row),
            `${f.result}: ${f.row}`,
          ).toBe(true);
        }
      }
    }
  });

  it('a ratio is ours / reference of the named row (1.97x: 30559 ms / 15549 ms, worked by hand)', () => {
    const perf = renderTables(root).find((t) => t.name === 'performance');
    expect(perf.text).toContain('1.97x one process');
  });

  it('a figure edited into a marked table by hand is reported, naming it', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const edited = readme.replace('1.97x one process', '1.97x one process / 1.48x tuned');
    expect(edited).not.toBe(readme);
    const problems = checkReadmeTables(root, (p) =>
      p === 'README.md' ? edited : readFileSync(join(root, p), 'utf8'),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/1\.48x has no result behind it/);
  });

  it('a table whose markers were removed is reported', () => {
    const problems = checkReadmeTables(root, () => '# no tables here\n');
    expect(problems.join('\n')).toMatch(/'performance' table's markers are missing/);
  });
});
