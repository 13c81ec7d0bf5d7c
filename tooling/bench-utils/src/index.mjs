// Helpers shared by every package's `pnpm bench`: medians of repeated runs, a
// PyTorch reference timed in the same run, and one report format (console + JSON).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { jsonLineProcess } from './json-lines.mjs';

export { jsonLineProcess } from './json-lines.mjs';
export { loadAverage, machineRecord } from './machine.mjs';

/** Median wall time in ms of `fn` after `warmup` untimed calls. Awaits async functions. */
export async function medianMs(fn, { warmup = 2, iters = 7 } = {}) {
  for (let i = 0; i < warmup; i++) await fn();
  const times = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

export const PYTHON = '/usr/bin/python3';

/** Whether Debian's torch (and torchvision) can be imported by /usr/bin/python3. */
export function torchAvailable() {
  if (!existsSync(PYTHON)) return false;
  try {
    execFileSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs a Python snippet that prints one JSON object on its last line and returns it.
 * The snippet gets `median_ms(fn, warmup=2, iters=7)` predefined and torch limited to 2 threads.
 */
export function runPython(body, { timeoutMs = 600_000 } = {}) {
  const prelude = [
    'import json, time, statistics, torch',
    'torch.set_num_threads(2)',
    'def median_ms(fn, warmup=2, iters=7):',
    '    for _ in range(warmup): fn()',
    '    ts = []',
    '    for _ in range(iters):',
    '        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1000)',
    '    return statistics.median(ts)',
    '',
  ].join('\n');
  const out = execFileSync(PYTHON, ['-c', `${prelude}\n${body}`], { encoding: 'utf8', timeout: timeoutMs });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * A persistent PyTorch process (tooling/bench/torch_ref.py with `threads` threads) answering one
 * job per line: `hello` is its torch version and threads, `ask({ conv })` / `ask({ resnet })` time
 * one job (see the script for the jobs and their answers).
 */
export function startTorchRef(threads) {
  const script = fileURLToPath(new URL('../../bench/torch_ref.py', import.meta.url));
  return jsonLineProcess(PYTHON, [script, String(threads)]);
}

function repoRoot() {
  let dir = process.cwd();
  while (!existsSync(join(dir, 'pnpm-workspace.yaml'))) {
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
  return dir;
}

/**
 * Prints a table of rows `{ name, ms, refMs?, ref? }` with the ratio ours / reference
 * (below 1 means we are faster) and writes it as JSON to runs/bench/<suite>.json.
 */
export function report(suite, rows, notes = []) {
  console.log(`\n## ${suite}`);
  for (const r of rows) {
    const ratio = r.refMs
      ? ` | ${r.ref ?? 'reference'} ${r.refMs.toFixed(2)} ms | ratio ${(r.ms / r.refMs).toFixed(2)}x`
      : '';
    const extra = r.extra ? ` | ${r.extra}` : '';
    console.log(`${r.name}: ${r.ms.toFixed(2)} ms${ratio}${extra}`);
  }
  for (const n of notes) console.log(`note: ${n}`);
  const file = join(repoRoot(), 'runs', 'bench', `${suite}.json`);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify({ suite, date: new Date().toISOString(), rows, notes }, null, 2)}\n`);
  renameSync(tmp, file);
}
