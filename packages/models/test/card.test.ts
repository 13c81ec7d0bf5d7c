import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The model card's figures come from committed result files: every number written with a decimal
 * point between the card's `<!-- figures -->` and `<!-- /figures -->` markers must be a value of
 * some results/*.json, rounded as the card shows it.
 */
const root = join(import.meta.dirname, '..');
const card = readFileSync(join(root, 'README.md'), 'utf8');

function numbersIn(value: unknown, out: number[] = []): number[] {
  if (typeof value === 'number') out.push(value);
  else if (Array.isArray(value)) for (const v of value) numbersIn(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) numbersIn(v, out);
  return out;
}

describe('model card', () => {
  const results = readdirSync(join(root, 'results'))
    .filter((f) => f.endsWith('.json'))
    .flatMap((f) => numbersIn(JSON.parse(readFileSync(join(root, 'results', f), 'utf8'))));
  const blocks = [...card.matchAll(/<!-- figures -->([\s\S]*?)<!-- \/figures -->/g)].map((m) => m[1]!);

  it('has figure blocks', () => {
    expect(blocks.length).toBeGreaterThan(0);
  });

  it('every figure in them is in a result file', () => {
    const figures = blocks.flatMap((b) => [...b.matchAll(/(?<![\d.])\d+\.\d+(?![\d.])/g)].map((m) => m[0]));
    expect(figures.length).toBeGreaterThan(10);
    const missing = figures.filter((f) => {
      const decimals = f.split('.')[1]!.length;
      return !results.some((v) => v.toFixed(decimals) === f);
    });
    expect(missing).toEqual([]);
  });
});
