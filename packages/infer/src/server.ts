import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError } from '@bmc/data';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { decodeToPixels } from './image.js';
import { type Detector, loadDetector } from './model.js';
import { atThreshold, countingThreshold, describeCountingThreshold } from './pipeline/operating-point.js';
import { toDetectionJson } from './pipeline/results.js';
import { type AppliedScale, applyPixelScale } from './pipeline/scale.js';
import type { DetectOptions } from './pipeline/types.js';
import { JobQueue, QueueFullError, TimeoutError } from './queue.js';

export interface ServerOptions {
  /** A bmc ONNX detector path, or an already loaded detector (shared, not disposed on close). */
  model: string | Detector;
  /** Default 127.0.0.1: the service is local unless asked otherwise. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Detections running at once. Default 1 (onnxruntime already uses every core per run). */
  concurrency?: number;
  /** Requests allowed to wait; more get 503. Default 64. */
  maxQueue?: number;
  /** Largest accepted body (raw or multipart file) in bytes; larger gets 413. Default 32 MiB. */
  bodyLimit?: number;
  /** Per-request deadline (queue wait + detection) in ms; past it, 503. Default 30 s. */
  timeoutMs?: number;
  /** onnxruntime threads. Default: all cores. */
  threads?: number;
  /** Detection settings applied to every request (query parameters may override thresholds). */
  detect?: DetectOptions;
  /** Serve the browser viewer at `/` (from `viewerDir`). Default true when the built viewer exists. */
  viewer?: boolean;
  /** Built viewer folder. Default: this package's dist/viewer. */
  viewerDir?: string;
  /** fastify logger: true for JSON logs on stdout (default), false for none, or pino options. */
  logger?: FastifyServerOptions['logger'];
}

export interface InferServer {
  app: FastifyInstance;
  detector: Detector;
  queue: JobQueue;
  /** The pixel scale every request gets: the model's recorded one unless `detect` overrides it. */
  pixelScale: AppliedScale;
  /** Starts listening; resolves to the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

const RAW_TYPES = /^(image\/[\w.+-]+|application\/octet-stream)$/;

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.onnx': 'application/octet-stream',
};

function defaultViewerDir(): string {
  // dist/index.js -> dist/viewer; src/server.ts (tests via source) -> ../dist/viewer
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'viewer'), join(here, '..', 'dist', 'viewer')];
  return candidates.find((d) => existsSync(join(d, 'index.html'))) ?? candidates[0]!;
}

function numberParam(q: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = q[key];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw Object.assign(new Error(`query '${key}' must be a number in [${min}, ${max}], got '${v}'`), {
      statusCode: 400,
    });
  return n;
}

/**
 * The detection service (fastify 5):
 * - `POST /v1/detect`: an image as the raw body (`image/*` or `application/octet-stream`) or as a
 *   multipart file field; answers the detections as JSON: those at the model's operating point
 *   (best F1 on validation; the candidate threshold for models without one), and the `threshold`
 *   used. Query `score`, `iou`, `max` override the model's thresholds. 400 for an unreadable image, 413 over the body limit, 415 for other content
 *   types, 503 when the queue is full or the deadline passes.
 * - `GET /healthz`: liveness plus queue state.
 * - `GET /v1/model`: the model's bmc metadata and both thresholds (candidates for AP, count); `GET /v1/model.onnx`: the model file (the viewer runs it locally).
 * - `GET /`: the browser viewer, cross-origin isolated so onnxruntime-web can use threads.
 * The model is loaded once; detections go through a queue with a concurrency limit.
 */
export async function createServer(opts: ServerOptions): Promise<InferServer> {
  const detector =
    typeof opts.model === 'string' ? await loadDetector(opts.model, { threads: opts.threads }) : opts.model;
  const bodyLimit = opts.bodyLimit ?? 32 * 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const queue = new JobQueue(opts.concurrency ?? 1, opts.maxQueue ?? 64);
  const app = Fastify({ logger: opts.logger ?? true, bodyLimit });
  // Only images, octet-stream and multipart are accepted: JSON or text bodies get fastify's 415.
  const pixelScale = applyPixelScale(detector.meta, opts.detect);
  app.removeAllContentTypeParsers();
  await app.register(multipart, { limits: { fileSize: bodyLimit, files: 1, fields: 8 } });
  app.addContentTypeParser(RAW_TYPES, { parseAs: 'buffer', bodyLimit }, (_req, body, done) =>
    done(null, body),
  );

  app.addHook('onSend', async (_req, reply) => {
    // Cross-origin isolation: lets the viewer's onnxruntime-web use SharedArrayBuffer (threads).
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    reply.header('Cross-Origin-Embedder-Policy', 'require-corp');
    reply.header('Cross-Origin-Resource-Policy', 'same-origin');
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    let status = err.statusCode ?? 500;
    if (err instanceof DataError) status = 400;
    if (err instanceof QueueFullError || err instanceof TimeoutError) status = 503;
    if (status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ status, reason: err.message }, 'request rejected');
    reply.status(status).send({ error: err.message, ...(err.code ? { code: err.code } : {}) });
  });

  app.get('/healthz', async () => ({
    status: 'ok',
    model: basename(detector.path),
    queue: queue.stats,
    // Peak resident set since start (resourceUsage reports KiB): what a deployment must provision.
    memory: { rssBytes: process.memoryUsage.rss(), peakRssBytes: process.resourceUsage().maxRSS * 1024 },
  }));

  // `count` and `detections` default to the model's operating point; ?score= overrides per request.
  const counting = countingThreshold(detector.meta, opts.detect?.scoreThreshold);
  if (counting.source === 'candidates')
    app.log.warn(`${basename(detector.path)}: counting at ${describeCountingThreshold(counting, '?score=')}`);
  app.get('/v1/model', async () => ({
    file: basename(detector.path),
    sizeBytes: detector.sizeBytes,
    metadata: detector.meta,
    // Both thresholds: candidates (COCO results / AP) and the one `count` uses by default.
    thresholds: { candidates: detector.meta.nms.scoreThreshold, count: counting },
    pixelScale,
  }));

  app.get('/v1/model.onnx', async (_req, reply) => {
    reply.type('application/octet-stream');
    return readFile(detector.path);
  });

  app.post('/v1/detect', async (req, reply) => {
    let bytes: Buffer;
    let name: string | undefined;
    if (req.isMultipart()) {
      const file = await req.file();
      if (!file) return reply.status(400).send({ error: 'multipart body has no file field' });
      bytes = await file.toBuffer();
      name = file.filename;
    } else {
      if (!Buffer.isBuffer(req.body) || req.body.length === 0)
        return reply.status(400).send({ error: 'empty body: send image bytes' });
      bytes = req.body;
    }
    const q = req.query as Record<string, unknown>;
    const options: DetectOptions = {
      ...opts.detect,
      ...defined({
        scoreThreshold: numberParam(q, 'score', 0, 1),
        iouThreshold: numberParam(q, 'iou', 0, 1),
        maxDetections: numberParam(q, 'max', 1, 100_000),
      }),
    };
    // Count and answer at the model's operating point unless ?score= says otherwise.
    const threshold = countingThreshold(detector.meta, options.scoreThreshold);
    const t0 = performance.now();
    const result = await queue.run(async () => {
      const image = await decodeToPixels(bytes).catch((e: Error) => {
        throw new DataError(
          name ?? 'request body',
          undefined,
          e instanceof DataError ? e.problem : e.message,
        );
      });
      return detector.detect(image, options);
    }, timeoutMs);
    req.log.info(
      {
        bytes: bytes.length,
        width: result.width,
        height: result.height,
        count: atThreshold(result, threshold.scoreThreshold).detections.length,
        ms: Math.round(performance.now() - t0),
      },
      'detected',
    );
    return {
      ...toDetectionJson(atThreshold(result, threshold.scoreThreshold), detector.meta, name),
      threshold,
    };
  });

  const viewerDir = resolve(opts.viewerDir ?? defaultViewerDir());
  if (opts.viewer ?? existsSync(join(viewerDir, 'index.html'))) {
    app.get('/*', async (req, reply) => {
      const url = decodeURIComponent((req.params as { '*': string })['*'] || 'index.html');
      const file = normalize(join(viewerDir, url));
      if (!file.startsWith(viewerDir + sep) || !existsSync(file))
        return reply.status(404).send({ error: `not found: /${url}` });
      reply.type(MIME[extname(file)] ?? 'application/octet-stream');
      return readFile(file);
    });
  }

  return {
    app,
    detector,
    pixelScale,
    queue,
    async listen() {
      return app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8080 });
    },
    async close() {
      await app.close();
      if (typeof opts.model === 'string') await detector.dispose();
    },
  };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
