import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeToPixels } from '../src/image.js';
import { type Detector, loadDetector } from '../src/model.js';
import type { DetectionJson } from '../src/pipeline/results.js';
import { createServer, type InferServer } from '../src/server.js';
import { maxBoxDiff, smearPng, TINY_MODEL } from './helpers.js';

/** A multipart/form-data body with one file field, built by hand (what curl -F sends). */
function multipart(field: string, filename: string, type: string, bytes: Buffer) {
  const boundary = '----bmc-test-boundary';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`;
  return {
    payload: Buffer.concat([Buffer.from(head), bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

/** POST `payload` to the service with its content type (no network: Fastify's inject). */
function post(
  server: Pick<InferServer, 'app'>,
  payload: string | Buffer,
  contentType = 'image/png',
  url = '/v1/detect',
) {
  return server.app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType } });
}

/** A detector whose detections wait for `release()`: makes queueing and timeouts deterministic. */
function gated(inner: Detector) {
  let open!: () => void;
  let gate = new Promise<void>((r) => (open = r));
  const d: Detector = {
    ...inner,
    detect: async (img, o) => {
      await gate;
      return inner.detect(img, o);
    },
    dispose: async () => {},
  };
  return {
    detector: d,
    release: () => open(),
    reset: () => {
      gate = new Promise<void>((r) => (open = r));
    },
  };
}

describe('HTTP service', () => {
  let detector: Detector;
  let server: InferServer;
  let png: Buffer;
  const logLines: string[] = [];
  beforeAll(async () => {
    detector = await loadDetector(TINY_MODEL, { threads: 1 });
    png = (await smearPng(5)).png;
    const stream = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(...String(chunk).trim().split('\n'));
        cb();
      },
    });
    server = await createServer({
      model: detector,
      bodyLimit: 1024 * 1024,
      concurrency: 2,
      logger: { level: 'info', stream },
      viewer: false,
    });
  });
  afterAll(async () => {
    await server?.close();
    await detector?.dispose();
  });

  it('answers POST /v1/detect (raw bytes) with the same detections as the library, and logs JSON', async () => {
    const res = await post(server, png);
    expect(res.statusCode).toBe(200);
    const body = res.json<DetectionJson>();
    const direct = await detector.detect(await decodeToPixels(png));
    expect(body.count).toBe(direct.detections.length);
    expect(body.count).toBeGreaterThan(5);
    expect(body.image).toEqual({ width: 320, height: 320 });
    expect(maxBoxDiff(body.detections, direct.detections)).toBe(0);
    expect(body.counts.cell + body.counts.dark_cell).toBe(body.count);
    const log = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'detected');
    expect(log).toMatchObject({ level: 30, width: 320, height: 320, count: body.count });
    expect(log.reqId).toBeDefined();
  });

  it('accepts a multipart file and query overrides of the thresholds', async () => {
    const m = multipart('image', 'smear.png', 'image/png', png);
    const res = await server.app.inject({ method: 'POST', url: '/v1/detect?score=0.8', ...m });
    expect(res.statusCode).toBe(200);
    const body = res.json<DetectionJson>();
    expect(body.image.name).toBe('smear.png');
    expect(body.detections.every((d) => d.score > 0.8)).toBe(true);
    const bad = await post(server, png, 'image/png', '/v1/detect?score=abc');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatch(/query 'score'/);
  });

  it('413 for a body over the limit (raw and multipart)', async () => {
    const big = Buffer.alloc(1024 * 1024 + 10, 1);
    const raw = await post(server, big, 'application/octet-stream');
    expect(raw.statusCode).toBe(413);
    const mp = await server.app.inject({
      method: 'POST',
      url: '/v1/detect',
      ...multipart('image', 'big.png', 'image/png', big),
    });
    expect(mp.statusCode).toBe(413);
  });

  it('400 with a message for a corrupt image or an empty body', async () => {
    const res = await post(server, Buffer.concat([png.subarray(0, 200), Buffer.alloc(500, 7)]));
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatch(/request body: cannot decode image/);
    const empty = await post(server, Buffer.alloc(0));
    expect(empty.statusCode).toBe(400);
  });

  it('415 for a content type that is neither an image, octet-stream nor multipart', async () => {
    const res = await post(server, '{"image": "x"}', 'application/json');
    expect(res.statusCode).toBe(415);
    const text = await post(server, 'hello', 'text/plain');
    expect(text.statusCode).toBe(415);
  });

  it('answers every one of 24 concurrent requests over real loopback HTTP, identically', async () => {
    const s = await createServer({ model: detector, port: 0, concurrency: 2, logger: false, viewer: false });
    const url = await s.listen();
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const replies = await Promise.all(
        Array.from({ length: 24 }, () =>
          fetch(`${url}/v1/detect`, {
            method: 'POST',
            body: new Uint8Array(png),
            headers: { 'content-type': 'image/png' },
          }).then(async (r) => ({
            status: r.status,
            body: (await r.json()) as DetectionJson,
          })),
        ),
      );
      expect(replies.map((r) => r.status)).toEqual(Array(24).fill(200));
      for (const r of replies) expect(r.body.detections).toEqual(replies[0]!.body.detections);
      expect(s.queue.stats).toMatchObject({ running: 0, waiting: 0 });
    } finally {
      await s.close();
    }
  });

  it('503 when the queue is full, and when the per-request deadline passes', async () => {
    const g = gated(detector);
    const s = await createServer({
      model: g.detector,
      concurrency: 1,
      maxQueue: 1,
      admissionWaitMs: 0,
      timeoutMs: 10_000,
      logger: false,
      viewer: false,
    });
    try {
      const send = () => post(s, png);
      const first = send();
      const second = send();
      // Let both reach the queue: one running (blocked on the gate), one waiting.
      await new Promise((r) => setTimeout(r, 300));
      expect(s.queue.stats).toMatchObject({ running: 1, waiting: 1 });
      const third = await send();
      expect(third.statusCode).toBe(503);
      expect(third.json().error).toMatch(/queue full/);
      g.release();
      expect((await first).statusCode).toBe(200);
      expect((await second).statusCode).toBe(200);
    } finally {
      await s.close();
    }
    g.reset();
    const t = await createServer({ model: g.detector, timeoutMs: 200, logger: false, viewer: false });
    try {
      const res = await post(t, png);
      expect(res.statusCode).toBe(503);
      expect(res.json().error).toMatch(/no result within 200 ms/);
    } finally {
      g.release();
      await t.close();
    }
  });

  it('GET /healthz, /v1/model and /v1/model.onnx', async () => {
    const h = await server.app.inject({ method: 'GET', url: '/healthz' });
    expect(h.json()).toMatchObject({
      status: 'ok',
      model: 'tiny-detector.onnx',
      queue: { running: 0, waiting: 0 },
    });
    const m = await server.app.inject({ method: 'GET', url: '/v1/model' });
    expect(m.json().metadata).toMatchObject({
      classNames: ['cell', 'dark_cell'],
      scoreMode: 'sqrt(cls*iou)',
    });
    const f = await server.app.inject({ method: 'GET', url: '/v1/model.onnx' });
    expect(Buffer.compare(f.rawPayload, await readFile(TINY_MODEL))).toBe(0);
    expect(f.headers['cross-origin-embedder-policy']).toBe('require-corp');
  });
});
