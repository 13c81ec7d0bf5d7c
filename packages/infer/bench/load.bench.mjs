// Load test of `bmc-infer serve` (the same command as `bmc serve`) at 16, 64 and 128 connections:
// autocannon on loopback against a child process with the default limits, a fixed time per level.
// Reports useful throughput (2xx answers per second), p99 latency of all answers and of the 2xx
// ones, the 503 share, errors and the server's RSS (sampled from /proc, plus its peak from
// /healthz). The reference is the 16-connection level measured in the same run; the figure that
// matters is the ratio of useful throughput at 128 connections to that at 16. Levels run in rounds
// with their order rotated (drifting load on a shared machine falls on each level alike), and each
// level's rounds are pooled.
//
// Run after `pnpm build`: node bench/load.bench.mjs [--seconds 10] [--rounds 2] [--levels 16,64,128] [--size 512]
// [--model file.onnx] [--server-args '--admission-wait 0'] [--out bench/measured/load.json]
// Percentiles are over the answers received within each run; requests still waiting when a run
// ends are counted as unansweredAtEnd.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { report } from '@bmc/bench-utils';
import { encodePng, generateSmear } from '@bmc/data';

const here = dirname(fileURLToPath(import.meta.url));
const execFileAsync = promisify(execFile);
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SECONDS = Number(arg('seconds', '10'));
const ROUNDS = Number(arg('rounds', '2'));
const LEVELS = arg('levels', '16,64,128').split(',').map(Number);
const SIZE = Number(arg('size', '512'));
const MODEL = arg('model', join(here, '..', 'test', 'fixtures', 'tiny-detector.onnx'));
const OUT = arg('out', join(here, 'measured', 'load.json'));
const THREADS = Math.min(2, availableParallelism());

const sh = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' });
  } catch {
    return '';
  }
};
const lscpu = sh('lscpu', []);
const machine = {
  cpu: /Model name:\s*(.*)/.exec(lscpu)?.[1]?.trim() ?? 'unknown',
  flags: /Flags:\s*(.*)/.exec(lscpu)?.[1]?.trim() ?? '',
  cores: availableParallelism(),
  node: process.version,
  loadavgAtStart: loadavg().map((l) => +l.toFixed(2)),
};

const png = await encodePng(generateSmear(3, 0, { width: SIZE, height: SIZE }).image);
const bodyFile = join(mkdtempSync(join(tmpdir(), 'bmc-load-')), 'smear.png');
writeFileSync(bodyFile, png);

const bin = join(here, '..', 'bin', 'bmc-infer.mjs');
const EXTRA = arg('server-args', '').split(' ').filter(Boolean);
const serverArgs = [
  'serve',
  '-m',
  MODEL,
  '--port',
  '0',
  '--threads',
  String(THREADS),
  '--no-viewer',
  ...EXTRA,
];
const child = spawn(process.execPath, [bin, ...serverArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise((resolve, reject) => {
  let buf = '';
  const onData = (d) => {
    buf += d;
    const m = buf.match(/"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/);
    if (m) {
      child.stdout.off('data', onData);
      resolve(m[1]);
    }
  };
  child.stdout.on('data', onData);
  child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
});
child.stdout.resume(); // its request logs are not needed, only drained

const rssMiB = () => {
  const m = /VmRSS:\s*(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
};
const health = async () => (await fetch(`${url}/healthz`)).json();
/** CPU seconds (user + system) the server process has used: what each answer costs it. */
const cpuSeconds = () => {
  const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

/** One run of `SECONDS` at `connections`: raw counts and every answer's latency. */
async function run(connections) {
  let maxRss = rssMiB();
  const sampler = setInterval(() => (maxRss = Math.max(maxRss, rssMiB())), 100);
  const before = (await health()).queue;
  const cpu0 = cpuSeconds();
  // The client runs at nice 10: on a 2-core machine its own CPU would otherwise come out of the
  // server's, which a client on another machine does not do.
  const { stdout: out } = await execFileAsync(
    'nice',
    [
      '-n',
      '10',
      process.execPath,
      join(here, 'load-client.mjs'),
      `${url}/v1/detect`,
      String(connections),
      String(SECONDS),
      bodyFile,
      'image/png',
    ],
    { maxBuffer: 256 * 2 ** 20 },
  );
  const r = JSON.parse(out.trim().split('\n').pop());
  const latencies = r.latencies;
  clearInterval(sampler);
  const serverCpu = cpuSeconds() - cpu0;
  const after = await health();
  const one = {
    connections,
    seconds: r.seconds,
    ok: r.ok,
    non2xx: r.non2xx,
    status503: after.queue.rejected - before.rejected,
    // Requests still queued or running when the run ended and its connections closed.
    cancelled: after.queue.cancelled - before.cancelled,
    errors: r.errors,
    serverCpu,
    maxRss,
    peakRss: after.memory.peakRssBytes / 2 ** 20,
    latencies,
  };
  console.log(
    `${connections} connections: ${one.ok} ok, ${one.non2xx} non-2xx, ${one.errors} errors in ${one.seconds.toFixed(1)} s`,
  );
  return one;
}

const pct = (sorted, q) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] : null;

/** Pools a level's rounds: rates over the summed time, percentiles over every answer. */
function pool(runs) {
  const seconds = runs.reduce((s, r) => s + r.seconds, 0);
  const sum = (k) => runs.reduce((s, r) => s + r[k], 0);
  const all = runs.flatMap((r) => r.latencies.all).sort((x, y) => x - y);
  const ok = runs.flatMap((r) => r.latencies.ok).sort((x, y) => x - y);
  const answered = sum('ok') + sum('non2xx');
  return {
    connections: runs[0].connections,
    rounds: runs.length,
    seconds: +seconds.toFixed(2),
    ok: sum('ok'),
    usefulPerSecond: +(sum('ok') / seconds).toFixed(2),
    usefulPerSecondByRound: runs.map((r) => +(r.ok / r.seconds).toFixed(2)),
    answered,
    share503: answered ? +((sum('non2xx') / answered) * 100).toFixed(2) : 0,
    refusedByServer: sum('status503'),
    unansweredAtEnd: sum('cancelled'),
    errors: sum('errors'),
    p50Ms: pct(all, 0.5),
    p99Ms: pct(all, 0.99),
    okP99Ms: pct(ok, 0.99) === null ? null : Math.round(pct(ok, 0.99)),
    serverCpuSecondsPerOk: sum('ok') ? +(sum('serverCpu') / sum('ok')).toFixed(3) : null,
    maxRssMiB: Math.round(Math.max(...runs.map((r) => r.maxRss))),
    peakRssMiB: Math.round(Math.max(...runs.map((r) => r.peakRss))),
  };
}

const runs = [];
try {
  // Warm-up: the first runs allocate onnxruntime's arenas.
  for (let i = 0; i < 3; i++)
    await fetch(`${url}/v1/detect`, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
  // Rounds, the level order rotated each round, so drifting machine load falls on every level alike.
  for (let round = 0; round < ROUNDS; round++)
    for (let i = 0; i < LEVELS.length; i++) runs.push(await run(LEVELS[(i + round) % LEVELS.length]));
  const alive = (await fetch(`${url}/healthz`)).status === 200;
  if (!alive) throw new Error('the service stopped answering /healthz');
} finally {
  child.kill('SIGTERM');
}

const levels = LEVELS.map((c) => pool(runs.filter((r) => r.connections === c)));
const ref = levels[0].usefulPerSecond;
const result = {
  suite: 'infer-load',
  date: new Date().toISOString(),
  command: `node packages/infer/bench/load.bench.mjs --seconds ${SECONDS} --rounds ${ROUNDS} --levels ${LEVELS.join(',')} --size ${SIZE}${EXTRA.length ? ` --server-args '${EXTRA.join(' ')}'` : ''}`,
  server: `bmc-infer serve ${serverArgs
    .slice(1)
    .join(' ')
    .replace(
      MODEL,
      relative(join(here, '..'), MODEL),
    )} (defaults: --concurrency 1 --max-queue 32 --max-connections 256 --admission-wait 10000)`,
  client: `autocannon 8 on the same machine at nice 10, closed loop (each connection sends its next request when answered; Retry-After ignored), POST /v1/detect`,
  image: `${SIZE}x${SIZE} synthetic smear PNG, ${png.length} bytes`,
  machine: { ...machine, loadavgAtEnd: loadavg().map((l) => +l.toFixed(2)) },
  reference: `useful throughput (2xx/s) at ${LEVELS[0]} connections, measured in the same run: ${ref} /s`,
  levels: levels.map((l) => ({ ...l, usefulVsReference: +(l.usefulPerSecond / ref).toFixed(3) })),
};
await mkdir(dirname(OUT), { recursive: true });
const tmp = `${OUT}.tmp-${process.pid}`;
await writeFile(tmp, `${JSON.stringify(result, null, 2)}\n`);
await rename(tmp, OUT);
report(
  'infer-load',
  result.levels.map((r) => ({
    name: `serve load, ${r.connections} connections, ${ROUNDS} x ${SECONDS} s`,
    ms: r.p99Ms,
    extra: `useful ${r.usefulPerSecond}/s (${r.usefulVsReference}x of ${LEVELS[0]} conn; rounds ${r.usefulPerSecondByRound.join(', ')}), p99 ${r.p99Ms} ms (2xx ${r.okP99Ms} ms), 503 ${r.share503}%, errors ${r.errors}, RSS max ${r.maxRssMiB} MiB`,
  })),
  [`written to ${relative(process.cwd(), OUT)}`, result.reference],
);
const worst = Math.min(...result.levels.map((r) => r.usefulVsReference));
if (worst < 0.8) {
  console.error(`useful throughput fell to ${worst}x of the ${LEVELS[0]}-connection level (wanted >= 0.8)`);
  process.exitCode = 1;
}
