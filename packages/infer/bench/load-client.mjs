// The load generator of load.bench.mjs, run as its own process (at a lower CPU priority there) so
// that on a small machine the client's own work competes less with the server it measures, as it
// would from another machine. Prints one JSON line: counts and every answer's latency.
// node bench/load-client.mjs <url> <connections> <seconds> <body file> <content type>
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

const [url, connections, seconds, bodyFile, type] = process.argv.slice(2);
const latencies = { ok: [], all: [] };
const instance = autocannon({
  url,
  method: 'POST',
  headers: { 'content-type': type },
  body: readFileSync(bodyFile),
  connections: Number(connections),
  duration: Number(seconds),
  timeout: 60,
});
instance.on('response', (_client, status, _bytes, ms) => {
  latencies.all.push(Math.round(ms));
  if (status === 200) latencies.ok.push(Math.round(ms));
});
const r = await instance;
process.stdout.write(
  `${JSON.stringify({ seconds: r.duration, ok: r['2xx'], non2xx: r.non2xx, errors: r.errors + r.timeouts, latencies })}\n`,
);
