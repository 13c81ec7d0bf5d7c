import { type ChildProcess, spawn } from 'node:child_process';

const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;

/** A `bin/bmc.mjs` left running (a worker, a service): its output so far and its exit. */
export interface BmcProcess {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

/** Starts `bmc <args>` in the background; `children` collects it for the test's clean-up. */
export function startBmc(args: string[], children: ChildProcess[]): BmcProcess {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const p: BmcProcess = {
    child,
    stdout: '',
    stderr: '',
    exit: new Promise((ok) => child.once('exit', (code) => ok(code))),
  };
  child.stderr!.on('data', (b: Buffer) => {
    p.stderr += b.toString();
  });
  child.stdout!.on('data', (b: Buffer) => {
    p.stdout += b.toString();
  });
  return p;
}

/** Waits until `bmc serve` at `base` answers /healthz (2 minutes at most, or until it exits). */
export async function waitForService(base: string, serve: BmcProcess): Promise<void> {
  const end = Date.now() + 120_000;
  while (
    !(await fetch(`${base}/healthz`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (Date.now() > end || serve.child.exitCode !== null)
      throw new Error(`the service did not start: ${serve.stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
