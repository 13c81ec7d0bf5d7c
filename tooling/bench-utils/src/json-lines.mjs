// A long-running child process that answers one JSON line per JSON job line, in order: how a
// reference (tooling/bench/torch_ref.py) stays loaded between the jobs a bench times against it.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * Starts `command args`; `hello` is its first line (what it says once ready), `ask(job)` sends a
 * job and resolves to its answer, `close()` ends its input so that it exits. Its stderr is the
 * bench's own.
 */
export function jsonLineProcess(command, args) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  const next = () => new Promise((resolve) => waiting.push(resolve));
  const hello = next();
  return {
    hello,
    ask: (job) => {
      const p = next();
      child.stdin.write(`${JSON.stringify(job)}\n`);
      return p;
    },
    close: () => child.stdin.end(),
  };
}
