import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { availableParallelism } from 'node:os';
import { basename, dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UNCLASSIFIED } from '@bmc/classify';
import { DataError } from '@bmc/data';
import multipart from '@fastify/multipart';
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import { type CellClassifier, loadCellClassifier } from './cell-classifier.js';
import { capConnections } from './connections.js';
import { checkImageSize, decodeToPixels, ImageTooLargeError } from './image.js';
import type { JobRoutesOptions } from './jobs/routes.js';
import { type Detector, loadDetector } from './model.js';
import { cellDifferential } from './pipeline/cell-types.js';
import { atThreshold, countingThreshold, describeCountingThreshold } from './pipeline/operating-point.js';
import { type DetectionJson, toDetectionJson } from './pipeline/results.js';
import { type AppliedScale, applyPixelScale } from './pipeline/scale.js';
import type { DetectOptions } from './pipeline/types.js';
import { CancelledError, JobQueue, QueueFullError, type Reservation, TimeoutError } from './queue.js';

export interface ServerOptions {
  /** A bmc ONNX detector path, or an already loaded detector (shared, not disposed on close). */
  model: string | Detector;
  /** Default 127.0.0.1: the service is local unless asked otherwise. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Detections running at once. Default 1, on every core (`serviceDefaults`). */
  concurrency?: number;
  /**
   * Requests allowed to wait with their body read (being received or queued); more wait unread
   * for `admissionWaitMs`, then get 503 with `Retry-After`. Default 32.
   */
  maxQueue?: number;
  /** Largest accepted body (raw or multipart file) in bytes; larger gets 413. Default 32 MiB. */
  bodyLimit?: number;
  /** Largest accepted image in pixels (width x height, read from its header before decoding); larger gets 413. Default 50 M. */
  maxPixels?: number;
  /** Per-request deadline (queue wait + detection) in ms; past it, 503 and the work stops at its next tile. Default 30 s. */
  timeoutMs?: number;
  /** Open connections allowed; over it the longest idle one is closed (or the new one when all are busy). Default 256. */
  maxConnections?: number;
  /** Time for a client to send its request headers, from connecting, in ms; slower: 408 and closed. Default 10 s. */
  headersTimeoutMs?: number;
  /** Time for a client to send a whole request (headers and body) in ms; slower: 408 and closed. Default 60 s. */
  requestTimeoutMs?: number;
  /** Idle keep-alive connections are closed after this many ms. Default 5 s. */
  keepAliveTimeoutMs?: number;
  /**
   * A request that finds the queue full waits this many ms, unread, for a place (admitted in
   * arrival order as places free) before it gets 503 + Retry-After; 0 refuses at once. Default
   * 10000. Waiting costs no memory or CPU; refusing costs reading the body, so a client retrying in
   * a loop is held to one refusal per wait.
   */
  admissionWaitMs?: number;
  /** onnxruntime threads per detection. Default: cores / concurrency, at least 1 (`serviceDefaults`). */
  threads?: number;
  /** Detection settings applied to every request (query parameters may override thresholds). */
  detect?: DetectOptions;
  /** Serve the browser viewer at `/` (from `viewerDir`). Default true when the built viewer exists. */
  viewer?: boolean;
  /** Built viewer folder. Default: this package's dist/viewer. */
  viewerDir?: string;
  /**
   * A cell-type classifier (`bmc classify export`; a path, or a loaded one, not disposed on close):
   * every detected cell gets its type and probability, and the answer the differential count.
   */
  classifier?: string | CellClassifier;
  /** With a classifier: cells whose best type is less probable are counted as unclassified. Default 0.5. */
  classifierThreshold?: number;
  /** Slide jobs on bmc workers through Redis (`POST /v1/jobs`, see jobs/routes.ts). */
  jobs?: Omit<JobRoutesOptions, 'detector' | 'detect' | 'classifier' | 'viewerPage'>;
  /** fastify logger: true for JSON logs on stdout (default), false for none, or pino options. */
  logger?: FastifyServerOptions['logger'];
}

export interface InferServer {
  app: FastifyInstance;
  detector: Detector;
  classifier?: CellClassifier;
  queue: JobQueue;
  /** The pixel scale every request gets: the model's recorded one unless `detect` overrides it. */
  pixelScale: AppliedScale;
  /** Starts listening; resolves to the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

// Matched against the media type with its parameters (`image/png; charset=binary`): the
// parameters are allowed and ignored.
const RAW_TYPES = /^(image\/[\w.+-]+|application\/octet-stream)\s*(;|$)/i;

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
 * The service's defaults: one detection at a time on every core; with `concurrency` given, each
 * detection gets cores / concurrency threads (so detections never oversubscribe the cores).
 * Measured with 16 connections on 2 cores (bench/measured/load-settings.json and its previous
 * version, onnxruntime threads not spinning): one detection on two threads was first or within 5 %
 * of the best (two single-thread detections 0.68x and 1.05x, two on two threads each 0.95x, 1.03x).
 */
export function serviceDefaults(
  opts: Pick<ServerOptions, 'concurrency' | 'threads'>,
  cores = availableParallelism(),
): { concurrency: number; threads: number } {
  const concurrency = opts.concurrency ?? 1;
  return { concurrency, threads: opts.threads ?? Math.max(1, Math.floor(cores / concurrency)) };
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
  const { concurrency, threads } = serviceDefaults(opts);
  const detector = typeof opts.model === 'string' ? await loadDetector(opts.model, { threads }) : opts.model;
  const classifier =
    typeof opts.classifier === 'string'
      ? await loadCellClassifier(opts.classifier, opts.classifierThreshold ?? 0.5, threads)
      : opts.classifier;
  const bodyLimit = opts.bodyLimit ?? 32 * 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const maxPixels = opts.maxPixels ?? 50_000_000;
  const queue = new JobQueue(concurrency, opts.maxQueue ?? 32);
  const pixelScale = applyPixelScale(detector.meta, opts.detect);
  const requestTimeout = opts.requestTimeoutMs ?? 60_000;
  const app = Fastify({
    logger: opts.logger ?? true,
    bodyLimit,
    // Node's HTTP timeouts, checked every second: slow or idle clients are answered 408 and closed.
    // No socket inactivity timeout (connectionTimeout): a detection may run longer than any idle
    // period, and the request and keep-alive timeouts already bound idle sockets.
    requestTimeout,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 5_000,
    connectionTimeout: 0,
    http: {
      requestTimeout,
      headersTimeout: Math.min(opts.headersTimeoutMs ?? 10_000, requestTimeout),
      connectionsCheckingInterval: 1_000,
    },
    // One log line per request (onResponse below) instead of fastify's two, and none for
    // refusals under overload: a flood would cost more to log than to refuse (/healthz counts them).
    logController: new LogController({ disableRequestLogging: true }),
  });
  const connections = capConnections(app.server, opts.maxConnections ?? 256);
  // Only images, octet-stream and multipart are accepted: JSON or text bodies get fastify's 415.
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
    let status = typeof err.statusCode === 'number' && err.statusCode >= 400 ? err.statusCode : 500;
    if (err instanceof DataError) status = 400;
    if (err instanceof ImageTooLargeError) status = 413;
    if (err instanceof QueueFullError || err instanceof TimeoutError) status = 503;
    if (err instanceof CancelledError) {
      // Nobody is listening any more; the log says the work was stopped.
      req.log.info({ reason: err.message }, 'cancelled');
      return reply.status(499).send({ error: err.message });
    }
    if (status === 503) reply.header('Retry-After', String(queue.retryAfterSeconds()));
    if (status >= 500 && status !== 503) {
      // An unexpected failure: the details (and stack) go to the log, never to the client.
      req.log.error({ err }, 'request failed');
      return reply.status(500).send({ error: 'internal server error', requestId: req.id });
    }
    req.log.info({ status, reason: err.message }, 'request rejected');
    reply.status(status).send({ error: err.message, ...(err.code ? { code: err.code } : {}) });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({ error: `not found: ${req.method} ${req.url.split('?')[0]}` });
  });
  app.addHook('onResponse', async (req, reply) => {
    if (!refused.has(req))
      req.log.info(
        { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
        'request completed',
      );
  });

  app.get('/healthz', async () => ({
    status: 'ok',
    model: basename(detector.path),
    queue: queue.stats,
    connections: connections.stats(),
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
    ...(classifier
      ? {
          classifier: {
            file: basename(classifier.path),
            classNames: classifier.classNames,
            cropSize: classifier.cropSize,
            margin: classifier.margin,
            threshold: classifier.threshold,
          },
        }
      : {}),
  }));

  // The viewer runs the classifier in the page too (GET answers 404 without one).
  if (classifier)
    app.get('/v1/classifier.onnx', async (_req, reply) => {
      reply.type('application/octet-stream');
      return readFile(classifier.path);
    });

  app.get('/v1/model.onnx', async (_req, reply) => {
    reply.type('application/octet-stream');
    return readFile(detector.path);
  });

  // Admission before the body is read. A request that finds the queue full waits unread (no
  // buffer, no decode, no CPU: its body stays in the kernel's socket buffers) in a FIFO line for up
  // to `admissionWaitMs`, is admitted as soon as a place frees, and otherwise gets 503 with
  // Retry-After. Refusing costs reading the body off the socket, so refusals are kept rare: a
  // closed-loop client that ignores Retry-After gets at most one per wait and connection. While
  // waiting, the connection counts as idle (the connection cap may close it for a new one). A
  // body over the limit is not drained on refusal: that connection closes.
  const reservations = new WeakMap<object, Reservation>();
  const refused = new WeakSet<object>();
  const admissionWaitMs = opts.admissionWaitMs ?? 10_000;
  const line: Array<(r: Reservation) => void> = [];
  // Deferred to the next turn of the event loop: when many clients leave at once, their
  // connections' close events are handled first, so none of them is admitted in vain.
  let drainScheduled = false;
  queue.onPlaceFree(() => {
    if (drainScheduled || line.length === 0) return;
    drainScheduled = true;
    setImmediate(() => {
      drainScheduled = false;
      while (line.length > 0) {
        const r = queue.reserve(false);
        if (!r) return;
        line.shift()!(r);
      }
    });
  });
  const admit = (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const enter = (r: Reservation) => {
      reservations.set(req, r);
      // However the request ends (answered, failed, client gone), its place is given back.
      reply.raw.once('close', r.release);
      done();
    };
    const r = line.length === 0 ? queue.reserve(false) : undefined;
    if (r) return enter(r);
    const socket = req.raw.socket;
    connections.idle(socket);
    const waiter = (place: Reservation) => {
      clearTimeout(timer);
      socket.off('close', leave).off('end', gaveUp);
      if (socket.destroyed || socket.readableEnded) return place.release();
      connections.busy(socket);
      enter(place);
    };
    const leave = () => {
      clearTimeout(timer);
      const i = line.indexOf(waiter);
      if (i >= 0) line.splice(i, 1);
    };
    const timer = setTimeout(() => {
      leave();
      socket.off('close', leave).off('end', gaveUp);
      queue.countRejected();
      refused.add(req);
      if (Number(req.headers['content-length']) > bodyLimit) reply.header('Connection', 'close');
      reply
        .status(503)
        .header('Retry-After', String(queue.retryAfterSeconds()))
        .send({ error: `busy: queue full (${queue.capacity} requests in progress), retry later` });
    }, admissionWaitMs);
    // A client that closes its side while waiting has given up (as nginx counts it): it leaves the
    // line and the connection is closed (Node would otherwise hold it half-open for the answer).
    const gaveUp = () => {
      leave();
      socket.destroy();
    };
    socket.once('close', leave).once('end', gaveUp);
    line.push(waiter);
  };

  app.post('/v1/detect', { onRequest: admit }, async (req, reply) => {
    let bytes: Buffer;
    let name: string | undefined;
    if (req.isMultipart()) {
      // busboy reports a malformed body (no boundary, truncated parts) as a plain Error: the
      // client's fault, so 400; its own limit errors carry their status (413).
      const asClientError = (e: Error & { statusCode?: number }) => {
        throw e.statusCode
          ? e
          : Object.assign(e, { statusCode: 400, message: `multipart body: ${e.message}` });
      };
      const file = await req.file().catch(asClientError);
      if (!file) return reply.status(400).send({ error: 'multipart body has no file field' });
      bytes = await file.toBuffer().catch(asClientError);
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
    let calls: Awaited<ReturnType<CellClassifier['classify']>> | undefined;
    // Header only, before queueing: an image too large to decode safely costs nothing.
    await checkImageSize(bytes, maxPixels, name ?? 'request body');
    const result = await queue.run(
      async (signal) => {
        const image = await decodeToPixels(bytes).catch((e: Error) => {
          throw new DataError(
            name ?? 'request body',
            undefined,
            e instanceof DataError ? e.problem : e.message,
          );
        });
        // Decoding cannot be interrupted; the detection stops at its next tile once aborted.
        signal.throwIfAborted();
        const detected = await detector.detect(image, { ...options, signal });
        if (classifier) {
          signal.throwIfAborted();
          const counted = atThreshold(detected, threshold.scoreThreshold).detections;
          calls = await classifier.classify(
            image,
            counted.map((d) => d.box),
          );
        }
        return detected;
      },
      { timeoutMs, signal: abandoned(req.raw, reply.raw), reservation: reservations.get(req) },
    );
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
    const json = toDetectionJson(atThreshold(result, threshold.scoreThreshold), detector.meta, name);
    return { ...json, threshold, ...(classifier && calls ? withCellTypes(json, calls, classifier) : {}) };
  });

  const viewerDir = resolve(opts.viewerDir ?? defaultViewerDir());
  const serveViewer = opts.viewer ?? existsSync(join(viewerDir, 'index.html'));
  // Loaded only with a queue: BullMQ and ioredis stay out of a plain service.
  if (opts.jobs)
    await (await import('./jobs/routes.js')).registerJobRoutes(app, {
      ...opts.jobs,
      detector,
      detect: opts.detect,
      // Slide jobs type their cells with the service's classifier, as POST /v1/detect does.
      ...(classifier ? { classifier } : {}),
      viewerPage: serveViewer,
    });

  if (serveViewer) {
    app.get('/*', async (req, reply) => {
      // The router has already percent-decoded the path (decoding again would fail on a literal '%').
      const url = (req.params as { '*': string })['*'] || 'index.html';
      const file = normalize(join(viewerDir, url));
      // Regular files inside the viewer folder only: a folder (`/assets/`, `/x/../`), anything
      // outside it or an invalid path is 404, never a read error.
      const st = file.startsWith(viewerDir + sep) ? await stat(file).catch(() => undefined) : undefined;
      if (!st?.isFile()) return reply.status(404).send({ error: `not found: /${url}` });
      reply.type(MIME[extname(file)] ?? 'application/octet-stream');
      return readFile(file);
    });
  }

  return {
    app,
    detector,
    ...(classifier ? { classifier } : {}),
    pixelScale,
    queue,
    async listen() {
      return app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 8080 });
    },
    async close() {
      await app.close();
      if (typeof opts.model === 'string') await detector.dispose();
      if (classifier && typeof opts.classifier === 'string') await classifier.dispose();
    },
  };
}

/**
 * Aborts when the client goes away before its answer is sent (the connection
 * closes early). fastify's `request.signal` listens to the request stream's
 * 'close', which Node also emits once the body has been read, so it cannot
 * tell an abandoned request from a finished upload.
 */
function abandoned(req: IncomingMessage, res: ServerResponse): AbortSignal {
  const control = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) control.abort(new CancelledError('client closed the connection'));
  };
  if (req.socket.destroyed) onClose();
  else res.once('close', onClose);
  return control.signal;
}

/**
 * The answer's second-stage part: each counted cell's type and probability (`unclassified` below
 * the classifier's threshold) and the differential count of the nucleated cells.
 */
function withCellTypes(
  json: DetectionJson,
  calls: Awaited<ReturnType<CellClassifier['classify']>>,
  classifier: CellClassifier,
) {
  return {
    detections: json.detections.map((d, i) => ({
      ...d,
      cellType: calls[i]!.type >= 0 ? classifier.classNames[calls[i]!.type]! : UNCLASSIFIED,
      cellTypeProbability: calls[i]!.probability,
    })),
    differential: cellDifferential(calls, classifier.classNames, classifier.threshold),
  };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
