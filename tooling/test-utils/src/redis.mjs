// A real Redis for tests (Debian's redis-server), on a free port, without persistence.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'];

/** Path of redis-server, or undefined when it is not installed (tests then skip with a message). */
export function redisServerPath() {
  const found = CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** A TCP port nobody listens on now (the OS picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function accepts(port) {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

async function waitFor(check, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/**
 * Starts `redis-server --save '' --appendonly no` on a free port of 127.0.0.1 and waits until it
 * accepts connections. `restart()` kills it (SIGKILL, as a crash) and starts it again on the same
 * port, empty: what a Redis without persistence looks like after a restart. `stop()` ends it.
 * Returns undefined when redis-server is not installed.
 */
export async function startRedis() {
  const bin = redisServerPath();
  if (!bin) return undefined;
  const port = await freePort();
  let child;
  const launch = async () => {
    child = spawn(bin, ['--save', '', '--appendonly', 'no', '--port', String(port), '--bind', '127.0.0.1'], {
      stdio: 'ignore',
    });
    await waitFor(() => accepts(port), 10_000, `redis-server on port ${port}`);
  };
  const kill = async (signal) => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid;
    },
    async restart(downMs = 0) {
      await kill('SIGKILL');
      if (downMs) await new Promise((r) => setTimeout(r, downMs));
      await launch();
    },
    stop: () => kill('SIGTERM'),
  };
}
