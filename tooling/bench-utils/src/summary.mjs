// First regenerates the README tables from results/ (readme-tables.mjs). Then the one table `pnpm bench` ends with: every suite's rows from runs/bench/*.json (written by report()),
// ours against the reference timed in the same run, plus the machine they came from. Also written as
// runs/bench/summary.json and runs/bench/summary.md.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';

import { writeReadmeTables } from './readme-tables.mjs';

const root = new URL('../../../', import.meta.url).pathname;
// The README tables come from the committed results (results/), not from this run's runs/bench.
const changed = writeReadmeTables(root);
console.log(
  `README tables from results/: ${changed.length ? `rewrote ${changed.join(', ')}` : 'up to date'}`,
);
const dir = join(root, 'runs', 'bench');
if (!existsSync(dir)) {
  console.error(`bench summary: ${dir} does not exist; run the benchmarks first (pnpm bench)`);
  process.exit(1);
}
const since = Number(process.env.BMC_BENCH_SINCE ?? 0);
const suites = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && f !== 'summary.json')
  .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')))
  .filter((s) => Array.isArray(s.rows) && Date.parse(s.date) >= since)
  .sort((a, b) => a.suite.localeCompare(b.suite));

const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`);
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load ${loadavg()[0].toFixed(2)} at summary time`;
const lines = [
  `# bmc benchmarks (${new Date().toISOString().slice(0, 10)})`,
  '',
  `Machine: ${machine}. Ratio = ours / reference, measured in the same run (below 1: we are faster).`,
  '',
  '| suite (measured) | work | ours | reference | ratio |',
  '|---|---|---|---|---|',
];
const compared = [];
for (const s of suites) {
  for (const r of s.rows) {
    if (!r.refMs) continue;
    const ratio = r.ms / r.refMs;
    compared.push({
      suite: s.suite,
      name: r.name,
      ms: r.ms,
      ref: r.ref ?? 'reference',
      refMs: r.refMs,
      ratio,
      date: s.date,
    });
    lines.push(
      `| ${s.suite} (${s.date.slice(5, 16).replace('T', ' ')}) | ${r.name} | ${fmt(r.ms)} | ${r.ref ?? 'reference'} ${fmt(r.refMs)} | ${ratio.toFixed(2)}x |`,
    );
  }
}
const absolute = suites.flatMap((s) => s.rows.filter((r) => !r.refMs).map((r) => ({ suite: s.suite, ...r })));
if (absolute.length) {
  lines.push('', 'Without a reference (absolute; compare across runs on the same machine only):', '');
  for (const r of absolute)
    lines.push(`- ${r.suite}: ${r.name}: ${fmt(r.ms)}${r.extra ? ` (${r.extra})` : ''}`);
}
const md = `${lines.join('\n')}\n`;
console.log(`\n${md}`);
writeFileSync(join(dir, 'summary.md'), md);
writeFileSync(
  join(dir, 'summary.json'),
  `${JSON.stringify({ date: new Date().toISOString(), machine, compared, absolute }, null, 2)}\n`,
);
console.log(`written: ${join(dir, 'summary.md')}, summary.json (${suites.length} suites)`);
