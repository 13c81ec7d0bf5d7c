import { UsageError } from '@bmc/core';
import { Redis, type RedisOptions } from 'ioredis';

/**
 * Redis connection settings for BullMQ, from a `redis://[user:password@]host:port[/db]` URL
 * (`rediss://` for TLS). Commands wait for a reconnect instead of failing
 * (`maxRetriesPerRequest: null`, which BullMQ requires of workers) and reconnects are retried
 * forever, at most 2 s apart: a Redis restart in the middle of a run pauses it, it never ends it.
 */
export function redisOptions(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--queue ${url}: not a URL (expected redis://host:port)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new UsageError(`--queue ${safeUrl(url)}: expected a redis:// or rediss:// URL, got ${u.protocol}`);
  if (!u.hostname) throw new UsageError(`--queue ${safeUrl(url)}: no host (expected redis://host:port)`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new UsageError(`--queue ${safeUrl(url)}: '${u.pathname.slice(1)}' is not a database number`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    db,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
  };
}

/** `url` with any password masked, for messages and logs. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/**
 * Checks once, before anything is queued or a model is loaded, that Redis answers at `url`: a
 * typo in the URL or a server that is not running is a usage error naming the URL (exit 2),
 * not a command that waits forever for a reconnect.
 */
export async function checkRedis(url: string, timeoutMs = 5_000): Promise<void> {
  const opts = redisOptions(url);
  const probe = new Redis({
    ...opts,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  // The socket's error (ECONNREFUSED, ENOTFOUND) says more than the rejection ("Connection is closed").
  let cause: Error | undefined;
  probe.on('error', (e: Error) => {
    cause ??= e;
  });
  try {
    await probe.connect();
    await probe.ping();
  } catch (e) {
    throw new UsageError(`--queue ${safeUrl(url)}: cannot reach Redis (${(cause ?? (e as Error)).message})`);
  } finally {
    probe.disconnect();
  }
}

/**
 * BullMQ settings shared by the worker and the submitter. Why these values:
 * - `lockDuration` 30 s: a worker holds a tile's lock and renews it every 15 s from its event
 *   loop; onnxruntime-node runs a tile synchronously on that loop, so the lock must outlast the
 *   slowest tile (a 1024 px tile on a slow CPU takes a few seconds). A worker killed mid-tile
 *   holds its lock until it expires: its tile is taken up again at most
 *   `lockDuration + stalledInterval` later.
 * - `stalledInterval` 5 s: how often live workers look for expired locks (cheap: one script).
 * - `maxStalledCount` 3: a tile whose worker died three times (a tile that crashes workers, e.g.
 *   out of memory) fails instead of killing every worker in turn.
 * - `attempts` 3 with backoff: a tile that throws (a slide read error on a network share) is
 *   retried twice, then reported; results are written before the job completes, so a retry or a
 *   stalled rerun of a finished tile finds its file and writes nothing twice.
 */
export const JOB_SETTINGS = {
  lockDurationMs: 30_000,
  stalledIntervalMs: 5_000,
  maxStalledCount: 3,
  attempts: 3,
  backoffMs: 1_000,
} as const;

/** One queue per model (its hash): a worker only ever takes tiles that its own model must detect. */
export function queueName(modelHash: string): string {
  return `bmc-detect-${modelHash.slice(0, 16)}`;
}
