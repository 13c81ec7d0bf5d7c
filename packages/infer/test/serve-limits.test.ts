// The service's limits, tested the way it runs: `bmc-infer serve` (the same command as `bmc serve`)
// as a child process on loopback, driven by raw sockets and fetch. Needs the built dist (turbo's
// test task builds it first).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PACKAGE_ROOT, smearPng, TINY_MODEL, VIEWER_DIR } from './helpers.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'bmc-infer.mjs');
const built = existsSync(join(PACKAGE_ROOT, 'dist', 'cli.js'));

interface Serve {
  url: string;
  port: number;
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  health(): Promise<Health>;
  stop(): Promise<void>;
}

interface Health {
  queue: {
    running: number;
    waiting: number;
    receiving: number;
    completed: number;
    cancelled: number;
    timedOut: number;
    rejected: number;
  };
  connections: { open: number; max: number; evicted: number; refused: number };
  memory: { rssBytes: number; peakRssBytes: number };
}

async function serve(args: string[]): Promise<Serve> {
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '-m', TINY_MODEL, '--port', '0', '--threads', '1', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let buf = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const l = JSON.parse(line);
          logs.push(l);
          const m = String(l.msg).match(/^Server listening at (http:\/\/127\.0\.0\.1:\d+)$/);
          if (m) resolve(m[1]!);
        } catch {
          // not a log line
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    port: Number(new URL(url).port),
    child,
    logs,
    health: async () => (await (await fetch(`${url}/healthz`)).json()) as Health,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Polls `probe` every 50 ms until it returns true or `ms` pass; returns whether it did. */
async function until(probe: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return probe();
}

/** A raw TCP connection to the server; resolves once connected. */
function rawSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the server sends on `s` until it closes the connection, or null after `ms`. */
function readUntilClosed(s: Socket, ms: number): Promise<string | null> {
  return new Promise((resolve) => {
    let got = '';
    s.on('data', (d) => (got += d));
    const t = setTimeout(() => resolve(null), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(got);
    });
    s.on('error', () => {});
  });
}

/** The first HTTP response on `s` (head and a Content-Length body), or null after `ms`. */
function readResponse(s: Socket, ms: number): Promise<string | null> {
  return new Promise((resolve) => {
    let got = '';
    const t = setTimeout(() => resolve(null), ms);
    const check = () => {
      const end = got.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: (\d+)\r\n/i.exec(got);
      if (end >= 0 && len && Buffer.byteLength(got) >= end + 4 + Number(len[1])) {
        clearTimeout(t);
        resolve(got);
      }
    };
    s.on('data', (d) => {
      got += d;
      check();
    });
    s.on('error', () => {});
  });
}

/** GET with the path sent exactly as given (fetch would resolve `..` segments itself). */
function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const postImage = (url: string, body: Buffer, type = 'image/png', signal?: AbortSignal) =>
  fetch(`${url}/v1/detect`, {
    method: 'POST',
    body: new Uint8Array(body),
    headers: { 'content-type': type },
    signal,
  });

/** Open file descriptors of a process (Linux). */
async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/**
 * A valid 16383 x 16383 PNG of one colour: 0.8 MB that decodes to 805 MB. Made with sharp once
 * per machine (about 10 s) and kept in the temp folder.
 */
async function hugePng(): Promise<Buffer> {
  const dir = join(tmpdir(), 'bmc-infer-test-fixtures');
  const file = join(dir, 'solid-16383x16383.png');
  if (!existsSync(file)) {
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await sharp({
      create: { width: 16383, height: 16383, channels: 3, background: { r: 220, g: 200, b: 210 } },
      limitInputPixels: false,
    })
      .png({ compressionLevel: 9 })
      .toFile(tmp);
    await rename(tmp, file);
  }
  return readFile(file);
}

/** A plain 6000 x 6000 field: at `--tile 256` the tiny model needs ~1000 tiles (seconds of work). */
const bigField = () =>
  sharp({ create: { width: 6000, height: 6000, channels: 3, background: { r: 220, g: 200, b: 210 } } })
    .png({ compressionLevel: 1 })
    .toBuffer();

describe.skipIf(!built)('bmc serve limits (real server on loopback)', () => {
  let png: Buffer;
  beforeAll(async () => {
    png = (await smearPng(5)).png;
  });

  describe('timeouts and the connection cap', () => {
    let s: Serve;
    beforeAll(async () => {
      s = await serve(['--headers-timeout', '1000', '--request-timeout', '1500']);
    });
    afterAll(async () => s?.stop());

    it('answers 408 and closes an upload whose body stalls (--request-timeout)', async () => {
      const sock = await rawSocket(s.port);
      // Headers promise 100 kB; only 10 bytes ever come.
      sock.write(
        'POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n0123456789',
      );
      const got = await readUntilClosed(sock, 8_000);
      sock.destroy();
      expect(got, 'connection still open 8 s after a 1.5 s request timeout').not.toBeNull();
      expect(got).toMatch(/^HTTP\/1\.1 408 /);
      // Its queue place was given back.
      expect((await s.health()).queue).toMatchObject({ receiving: 0, running: 0, waiting: 0 });
    });

    it('closes a connection that never sends its headers (--headers-timeout)', async () => {
      const sock = await rawSocket(s.port);
      const got = await readUntilClosed(sock, 8_000);
      sock.destroy();
      expect(got, 'idle connection still open 8 s after a 1 s headers timeout').not.toBeNull();
    });

    it('keeps /healthz answering and file descriptors bounded under 300 idle connections (cap 32)', async () => {
      // Long timeouts: here only the cap may close the idle sockets.
      const s = await serve(['--max-connections', '32', '--headers-timeout', '60000']);
      const before = await fdCount(s.child.pid!);
      const sockets: Socket[] = [];
      try {
        for (let i = 0; i < 300; i++) {
          const sock = await rawSocket(s.port);
          sock.on('error', () => {});
          sockets.push(sock);
        }
        expect(await fdCount(s.child.pid!)).toBeLessThanOrEqual(before + 32 + 4);
        const t0 = Date.now();
        const h = await s.health();
        const healthMs = Date.now() - t0;
        expect(healthMs).toBeLessThan(2_000);
        expect(h.connections.max).toBe(32);
        expect(h.connections.open).toBeLessThanOrEqual(32);
        // Idle sockets were closed to make room (longest idle first), not held open.
        expect(h.connections.evicted).toBeGreaterThanOrEqual(300 - 32);
        // And work still gets done.
        expect((await postImage(s.url, png)).status).toBe(200);
      } finally {
        for (const sock of sockets) sock.destroy();
        await s.stop();
      }
    });
  });

  describe('image size and cancellation', () => {
    let s: Serve;
    let field: Buffer;
    beforeAll(async () => {
      field = await bigField();
      s = await serve(['--concurrency', '1', '--tile', '256', '--max-queue', '4', '--admission-wait', '500']);
    });
    afterAll(async () => s?.stop());

    it('refuses a 16383 x 16383 PNG from its header with 413, without decoding it', async () => {
      const huge = await hugePng();
      expect(huge.length).toBeLessThan(2 * 1024 * 1024);
      const res = await postImage(s.url, huge);
      expect(res.status).toBe(413);
      const body = (await res.json()) as { error: string };
      expect(body.error).toMatch(/16383x16383 = 268\.4 megapixels, over the limit of 50\.0 megapixels/);
      const h = await s.health();
      // Decoded it would be 16383 * 16383 * 3 bytes = 805 MB; nothing near that was ever resident.
      expect(h.memory.peakRssBytes).toBeLessThan(500 * 2 ** 20);
      expect(h.queue).toMatchObject({ running: 0, waiting: 0, completed: 0 });
      expect((await postImage(s.url, png)).status).toBe(200);
    });

    it('stops the work of a request whose client went away, and drops a queued one before it starts', async () => {
      const h0 = await s.health();
      const a = new AbortController();
      const b = new AbortController();
      const first = postImage(s.url, field, 'image/png', a.signal).catch((e: Error) => e);
      expect(await until(async () => (await s.health()).queue.running === 1, 10_000)).toBe(true);
      const second = postImage(s.url, field, 'image/png', b.signal).catch((e: Error) => e);
      expect(await until(async () => (await s.health()).queue.waiting === 1, 10_000)).toBe(true);
      // The queued one leaves first: it must be dropped without running.
      b.abort();
      expect(await until(async () => (await s.health()).queue.waiting === 0, 5_000)).toBe(true);
      expect((await s.health()).queue.running).toBe(1);
      // Then the running one: its detection stops at the next tile (~1000 tiles in all).
      a.abort();
      expect(
        await until(async () => (await s.health()).queue.running === 0, 5_000),
        'the abandoned detection was still running 5 s later',
      ).toBe(true);
      await Promise.all([first, second]);
      const h = await s.health();
      expect(h.queue.completed).toBe(h0.queue.completed);
      expect(h.queue.cancelled).toBe(h0.queue.cancelled + 2);
      expect(s.logs.filter((l) => l.msg === 'cancelled').length).toBeGreaterThanOrEqual(2);
      // A normal request behind them is served.
      expect((await postImage(s.url, png)).status).toBe(200);
    });

    it('past the deadline answers 503 and stops the work, so the next request is served', async () => {
      const t = await serve(['--concurrency', '1', '--tile', '256', '--timeout', '1000']);
      try {
        const res = await postImage(t.url, field);
        expect(res.status).toBe(503);
        expect(((await res.json()) as { error: string }).error).toMatch(/no result within 1000 ms/);
        expect(await until(async () => (await t.health()).queue.running === 0, 5_000)).toBe(true);
        const next = await postImage(t.url, png);
        expect(next.status).toBe(200);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect((await t.health()).queue).toMatchObject({ timedOut: 1, completed: 1 });
      } finally {
        await t.stop();
      }
    });

    it('a request that finds the queue full waits unread and is admitted when a place frees', async () => {
      const t = await serve(['--concurrency', '1', '--tile', '256', '--max-queue', '0']);
      try {
        const a = new AbortController();
        const busy = postImage(t.url, field, 'image/png', a.signal).catch((e: Error) => e);
        expect(await until(async () => (await t.health()).queue.running === 1, 10_000)).toBe(true);
        // No place: this one waits (default --admission-wait 10 s) instead of being refused...
        const waiting = postImage(t.url, png);
        await new Promise((r) => setTimeout(r, 500));
        expect((await t.health()).queue).toMatchObject({ running: 1, receiving: 0, waiting: 0, rejected: 0 });
        // ...and is served once the place frees.
        a.abort();
        await busy;
        expect((await waiting).status).toBe(200);
        expect((await t.health()).queue).toMatchObject({ completed: 1, rejected: 0, cancelled: 1 });
      } finally {
        await t.stop();
      }
    });

    it('refuses without reading the body when the queue stays full (503 + Retry-After)', async () => {
      const a = new AbortController();
      const busy = postImage(s.url, field, 'image/png', a.signal).catch((e: Error) => e);
      const fillers: Array<Promise<unknown>> = [];
      try {
        expect(await until(async () => (await s.health()).queue.running === 1, 10_000)).toBe(true);
        // Fill the 4 waiting places.
        for (let i = 0; i < 4; i++)
          fillers.push(postImage(s.url, png, 'image/png', a.signal).catch((e) => e));
        expect(await until(async () => (await s.health()).queue.waiting === 4, 10_000)).toBe(true);
        // Headers announce 20 MB, no body byte is sent: the answer must come anyway.
        const sock = await rawSocket(s.port);
        sock.write(
          'POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 20000000\r\n\r\n',
        );
        const got = await readResponse(sock, 5_000);
        sock.destroy();
        expect(got, 'no answer without the body').not.toBeNull();
        expect(got).toMatch(/^HTTP\/1\.1 503 /);
        expect(got).toMatch(/\r\nretry-after: \d+\r\n/i);
        expect(got).toMatch(/queue full/);
      } finally {
        a.abort();
        await Promise.all([busy, ...fillers]);
      }
    });
  });

  describe('client errors are 4xx, never 500', () => {
    let s: Serve;
    beforeAll(async () => {
      s = await serve(existsSync(join(VIEWER_DIR, 'index.html')) ? [] : ['--no-viewer']);
    });
    afterAll(async () => s?.stop());

    it('400 for multipart without a boundary', async () => {
      const res = await fetch(`${s.url}/v1/detect`, {
        method: 'POST',
        body: 'abc',
        headers: { 'content-type': 'multipart/form-data' },
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/multipart body: .*boundary/i);
    });

    it('404 for folders and paths out of the viewer: /assets, /assets/, /v1/model.onnx/../../', async () => {
      for (const path of ['/assets', '/assets/', '/v1/model.onnx/../../', '/../../etc/passwd', '/a%00b']) {
        const res = await rawGet(s.port, path);
        expect(res.status, path).toBe(404);
        expect(JSON.parse(res.body).error).toMatch(/^not found/);
      }
      expect((await rawGet(s.port, '/%E0%A4%A')).status).toBe(400);
    });

    it('accepts a media type with parameters (image/png; charset=binary)', async () => {
      const res = await postImage(s.url, png, 'image/png; charset=binary');
      expect(res.status).toBe(200);
      expect(((await res.json()) as { image: unknown }).image).toMatchObject({ width: 320, height: 320 });
    });

    it('logged no 500 and sent no stack trace', async () => {
      expect(s.logs.filter((l) => Number(l.level) >= 50)).toEqual([]);
      for (const l of s.logs) if (l.msg === 'request completed') expect(Number(l.status)).toBeLessThan(500);
    });
  });
});
