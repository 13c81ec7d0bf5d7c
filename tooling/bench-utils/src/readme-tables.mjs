// README tables generated from committed result files (results/ at the repository root), so every
// figure in them can be traced to a measurement with its machine and load. `results/readme-tables.json`
// names, per table, the README file, the rows and, per figure, the result file and row it comes from.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const marker = (name, end) => `<!-- results:${name}:${end ? 'end' : 'start'} -->`;

/** A result file, checked for what makes it traceable: rows, the machine's CPU model and flags, the load. */
export function readResult(root, file) {
  const path = join(root, 'results', file);
  let r;
  try {
    r = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`results/${file}: ${e.code === 'ENOENT' ? 'missing' : e.message}`);
  }
  const missing = [
    !Array.isArray(r.rows) && 'rows',
    !r.machine?.cpu && 'machine.cpu',
    !r.machine?.flags && 'machine.flags',
    !r.load && 'load',
    !r.date && 'date',
    !r.command && 'command',
  ].filter(Boolean);
  if (missing.length) throw new Error(`results/${file}: lacks ${missing.join(', ')}`);
  return r;
}

function figure(root, f, cache) {
  const r = cache.get(f.result) ?? readResult(root, f.result);
  cache.set(f.result, r);
  const row = r.rows.find((x) => x.name === f.row);
  if (!row) throw new Error(`results/${f.result}: no row '${f.row}'`);
  if (!(row.ms > 0 && row.refMs > 0))
    throw new Error(`results/${f.result}: row '${f.row}' has no ms / refMs`);
  return `${(row.ms / row.refMs).toFixed(2)}x${f.label ? ` ${f.label}` : ''}`;
}

/** The Markdown of each table (between its markers), from the result files. */
export function renderTables(root) {
  const spec = JSON.parse(readFileSync(join(root, 'results', 'readme-tables.json'), 'utf8'));
  const cache = new Map();
  return spec.tables.map((t) => {
    const lines = [`| ${t.columns.join(' | ')} |`, `|${t.columns.map(() => '---').join('|')}|`];
    const files = new Set();
    for (const row of t.rows) {
      const figs = row.figures.map((f) => figure(root, f, cache));
      const used = [...new Set(row.figures.map((f) => f.result))];
      for (const u of used) files.add(u);
      // Links relative to the README's folder (a package README lives below the root).
      const link = (u) => `[results/${u}](${relative(dirname(t.file), join('results', u))})`;
      lines.push(`| ${row.work} | ${figs.join(' / ')} | ${row.reference} | ${used.map(link).join(', ')} |`);
    }
    lines.push('');
    for (const f of files) {
      const r = cache.get(f);
      lines.push(
        `- \`results/${f}\` (${r.date.slice(0, 10)}, ${r.machine.cpu}, ${r.machine.cores ?? '?'} cores): load ${r.load}.`,
      );
    }
    return { name: t.name, file: t.file, text: lines.join('\n') };
  });
}

/** The current text between a table's markers in its README, or null when the markers are absent. */
function currentBlock(source, name) {
  const a = source.indexOf(marker(name, false));
  const b = source.indexOf(marker(name, true));
  if (a < 0 || b < a) return null;
  return { start: a + marker(name, false).length, end: b };
}

/** Rewrites every marked table from the results (temp file + rename); returns the files changed. */
export function writeReadmeTables(root) {
  const changed = [];
  for (const t of renderTables(root)) {
    const path = join(root, t.file);
    const source = readFileSync(path, 'utf8');
    const at = currentBlock(source, t.name);
    if (!at) throw new Error(`${t.file}: no ${marker(t.name, false)} ... ${marker(t.name, true)} block`);
    const next = `${source.slice(0, at.start)}\n${t.text}\n${source.slice(at.end)}`;
    if (next === source) continue;
    writeFileSync(`${path}.tmp-${process.pid}`, next);
    renameSync(`${path}.tmp-${process.pid}`, path);
    changed.push(t.file);
  }
  return changed;
}

/**
 * Problems with the marked tables: a block that is missing, or figures (numbers) in a block that the
 * result files do not give. An empty list means every figure in every marked table has a result.
 */
export function checkReadmeTables(root, readFile = (p) => readFileSync(join(root, p), 'utf8')) {
  const problems = [];
  for (const t of renderTables(root)) {
    const at = currentBlock(readFile(t.file), t.name);
    if (!at) {
      problems.push(`${t.file}: the '${t.name}' table's markers are missing`);
      continue;
    }
    const current = readFile(t.file).slice(at.start, at.end).trim();
    if (current === t.text.trim()) continue;
    const numbers = (s) => s.match(/\d+(?:[.,]\d+)*x?/g) ?? [];
    const backed = new Set(numbers(t.text));
    const unbacked = [...new Set(numbers(current).filter((n) => !backed.has(n)))];
    problems.push(
      unbacked.length
        ? `${t.file} '${t.name}' table: ${unbacked.join(', ')} has no result behind it (run pnpm bench:summary, or add the result to results/)`
        : `${t.file} '${t.name}' table differs from what results/ gives (run pnpm bench:summary)`,
    );
  }
  return problems;
}
