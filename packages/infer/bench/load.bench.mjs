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
// [--model file.onnx] [--image smear.png] [--server-args '--admission-wait 0'] [--out bench/measured/load.json]
//
// Settings sweep (which --threads / --concurrency to make the defaults): one server per setting,
// all started at once (idle ones cost nothing), rounds rotating over the settings so drifting load
// falls on each alike; the reference is the first setting, measured in the same run:
// node bench/load.bench.mjs --levels 16 --settings 'threads=2 concurrency=1;threads=1 concurrency=2' [--batch-probe 320]
//   [--out bench/measured/load-settings.json]; a setting may also name `model=<file>`.
// Percentiles are over the answers received within each run; requests still waiting when a run
// ends are counted as unansweredAtEnd.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadAverage, machineRecord, report } from '@bmc/bench-utils';
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
const SETTINGS = arg('settings', '')
  .split(';')
  .map((x) => x.trim())
  .filter(Boolean);
const OUT = arg('out', join(here, 'measured', SETTINGS.length ? 'load-settings.json' : 'load.json'));
const IMAGE = arg('image', '');
const THREADS = Math.min(2, availableParallelism());

const machine = machineRecord();

const png = IMAGE
  ? readFileSync(IMAGE)
  : await encodePng(generateSmear(3, 0, { width: SIZE, height: SIZE }).image);
const imageType = IMAGE && /\.jpe?g$/i.test(IMAGE) ? 'image/jpeg' : 'image/png';
const bodyFile = join(
  mkdtempSync(join(tmpdir(), 'bmc-load-')),
  imageType === 'image/jpeg' ? 'smear.jpg' : 'smear.png',
);
writeFileSync(bodyFile, png);

const bin = join(here, '..', 'bin', 'bmc-infer.mjs');
const EXTRA = arg('server-args', '').split(' ').filter(Boolean);

/** A setting `threads=1 concurrency=2 model=x.onnx` as serve arguments (threads default: THREADS). */
function settingArgs(setting) {
  const kv = Object.fromEntries(
    setting
      .split(/\s+/)
      .filter(Boolean)
      .map((t) => t.split('=')),
  );
  const model = kv.model ?? MODEL;
  const args = [
    'serve',
    '-m',
    model,
    '--port',
    '0',
    '--threads',
    kv.threads ?? String(THREADS),
    '--no-viewer',
  ];
  if (kv.concurrency) args.push('--concurrency', kv.concurrency);
  return [...args, ...EXTRA];
}

/** Starts `bmc-infer serve` and returns its URL and probes of its process. */
async function startServer(serverArgs) {
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
  /** CPU seconds (user + system) the server process has used: what each answer costs it. */
  const cpuSeconds = () => {
    const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  const health = async () => (await fetch(`${url}/healthz`)).json();
  // Warm-up: the first runs allocate onnxruntime's arenas.
  for (let i = 0; i < 3; i++)
    await fetch(`${url}/v1/detect`, { method: 'POST', body: png, headers: { 'content-type': imageType } });
  return { child, url, rssMiB, cpuSeconds, health, args: serverArgs };
}

/** One run of `SECONDS` at `connections` against `server`: raw counts and every answer's latency. */
async function run(server, connections) {
  const { url, rssMiB, cpuSeconds, health } = server;
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
      imageType,
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
    `${server.label ?? ''}${connections} connections: ${one.ok} ok, ${one.non2xx} non-2xx, ${one.errors} errors in ${one.seconds.toFixed(1)} s`,
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

if (SETTINGS.length) {
  await sweep();
  process.exit(process.exitCode ?? 0);
}

const serverArgs = settingArgs('');
const server = await startServer(serverArgs);
const runs = [];
try {
  // Rounds, the level order rotated each round, so drifting machine load falls on every level alike.
  for (let round = 0; round < ROUNDS; round++)
    for (let i = 0; i < LEVELS.length; i++) runs.push(await run(server, LEVELS[(i + round) % LEVELS.length]));
  const alive = (await fetch(`${server.url}/healthz`)).status === 200;
  if (!alive) throw new Error('the service stopped answering /healthz');
} finally {
  server.child.kill('SIGTERM');
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
  machine: { ...machine, loadavgAtEnd: loadAverage() },
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

/**
 * What batching small images could give: network images per second of one onnxruntime-node session
 * on `BATCH_PROBE` x `BATCH_PROBE` inputs (the shipped model's tile size), one run at a time with
 * THREADS threads, two runs at once with 1 thread each, and batches of 2 and 4 with THREADS threads,
 * in rotating rounds. Network only (no decode / post-processing), so it bounds what batching in the
 * service could gain over running requests side by side.
 */
async function batchingProbe(model, side) {
  const ort = await import('onnxruntime-node');
  const make = (threads) =>
    ort.InferenceSession.create(model, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  const [wide, narrow] = await Promise.all([make(THREADS), make(1)]);
  const input = (n) =>
    new ort.Tensor(
      'float32',
      Float32Array.from({ length: n * 3 * side * side }, (_, i) => Math.sin(i) * 2),
      [n, 3, side, side],
    );
  const name = wide.inputNames[0];
  const x1 = input(1);
  const x2 = input(2);
  const x4 = input(4);
  const ways = {
    [`one at a time, ${THREADS} threads`]: async () => {
      for (let i = 0; i < 4; i++) await wide.run({ [name]: x1 });
      return 4;
    },
    'two at once, 1 thread each': async () => {
      for (let i = 0; i < 2; i++) await Promise.all([narrow.run({ [name]: x1 }), narrow.run({ [name]: x1 })]);
      return 4;
    },
    [`batches of 2, ${THREADS} threads`]: async () => {
      for (let i = 0; i < 2; i++) await wide.run({ [name]: x2 });
      return 4;
    },
    [`batches of 4, ${THREADS} threads`]: async () => {
      await wide.run({ [name]: x4 });
      return 4;
    },
  };
  const rates = Object.fromEntries(Object.keys(ways).map((k) => [k, []]));
  for (const f of Object.values(ways)) await f(); // warm-up
  const keys = Object.keys(ways);
  for (let round = 0; round < 4; round++)
    for (let i = 0; i < keys.length; i++) {
      const k = keys[(i + round) % keys.length];
      const t0 = performance.now();
      const n = await ways[k]();
      rates[k].push(n / ((performance.now() - t0) / 1000));
    }
  await wide.release();
  await narrow.release();
  const med = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
  const ref = med(rates[keys[0]]);
  return Object.fromEntries(
    keys.map((k) => [
      k,
      { imagesPerSecond: +med(rates[k]).toFixed(2), vsOneAtATime: +(med(rates[k]) / ref).toFixed(3) },
    ]),
  );
}

/** The settings sweep: every setting at LEVELS[0] connections, rounds rotating over the settings. */
async function sweep() {
  const connections = LEVELS[0];
  const servers = [];
  try {
    for (const setting of SETTINGS) {
      const sv = await startServer(settingArgs(setting));
      sv.setting = setting;
      sv.label = `[${setting}] `;
      servers.push(sv);
    }
    const runsBy = new Map(servers.map((sv) => [sv, []]));
    for (let round = 0; round < ROUNDS; round++)
      for (let i = 0; i < servers.length; i++) {
        const sv = servers[(i + round) % servers.length];
        runsBy.get(sv).push(await run(sv, connections));
      }
    const pooled = servers.map((sv) => ({
      setting: sv.setting,
      server: `bmc-infer ${sv.args.join(' ').replace(MODEL, relative(join(here, '..'), MODEL))}`,
      ...pool(runsBy.get(sv)),
    }));
    const ref = pooled[0].usefulPerSecond;
    const side = Number(arg('batch-probe', '320'));
    for (const sv of servers) sv.child.kill('SIGTERM');
    const batching = side > 0 ? await batchingProbe(MODEL, side) : undefined;
    const result = {
      suite: 'infer-load-settings',
      date: new Date().toISOString(),
      command: `node packages/infer/bench/load.bench.mjs --seconds ${SECONDS} --rounds ${ROUNDS} --levels ${connections} --settings '${SETTINGS.join(';')}'${IMAGE ? ` --image ${relative(process.cwd(), IMAGE)}` : ` --size ${SIZE}`}${arg('model') ? ` --model ${relative(process.cwd(), MODEL)}` : ''}`,
      client: `autocannon 8 on the same machine at nice 10, closed loop, ${connections} connections, POST /v1/detect`,
      image: IMAGE
        ? `${relative(join(here, '..', '..', '..'), IMAGE)}, ${png.length} bytes`
        : `${SIZE}x${SIZE} synthetic smear PNG, ${png.length} bytes`,
      machine: { ...machine, loadavgAtEnd: loadAverage() },
      reference: `useful throughput (2xx/s) of the first setting (${SETTINGS[0]}), measured in the same run: ${ref} /s`,
      settings: pooled.map((l) => ({ ...l, usefulVsReference: +(l.usefulPerSecond / ref).toFixed(3) })),
      ...(batching
        ? {
            batchingProbe: {
              what: `network only, ${relative(join(here, '..'), MODEL)} on ${side}x${side} inputs, one session, 4 rotating rounds`,
              ...batching,
            },
          }
        : {}),
    };
    await mkdir(dirname(OUT), { recursive: true });
    const tmp = `${OUT}.tmp-${process.pid}`;
    await writeFile(tmp, `${JSON.stringify(result, null, 2)}\n`);
    await rename(tmp, OUT);
    report(
      'infer-load-settings',
      result.settings.map((r) => ({
        name: `serve ${connections} connections, ${r.setting}, ${ROUNDS} x ${SECONDS} s`,
        ms: r.p50Ms,
        extra: `useful ${r.usefulPerSecond}/s (${r.usefulVsReference}x; rounds ${r.usefulPerSecondByRound.join(', ')}), p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, errors ${r.errors}, server CPU per 2xx ${r.serverCpuSecondsPerOk} s, RSS max ${r.maxRssMiB} MiB`,
      })),
      [
        `written to ${relative(process.cwd(), OUT)}`,
        result.reference,
        ...(batching ? [`batching probe (network only, ${side}x${side}): ${JSON.stringify(batching)}`] : []),
      ],
    );
  } finally {
    for (const sv of servers) sv.child.kill('SIGTERM');
  }
}
