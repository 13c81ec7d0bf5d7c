import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { DifferentialCount } from '@bmc/classify';
import { writeFileAtomic } from '@bmc/data';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { CellClassifier } from '../cell-classifier.js';
import { type DetectCommandResult, detectCommand } from '../detect-command.js';
import type { Detector } from '../model.js';
import type { DetectOptions } from '../pipeline/types.js';
import { DZI_FILE, DZI_TILES } from '../slide/deep-zoom.js';
import { checkRedis, safeUrl } from './connection.js';
import { JOBS_PAGE } from './page.js';
import { type QueueDetection, queueDetection } from './submit.js';
import { fileIdentity, modelHash, resultId } from './tile-store.js';

export interface JobRoutesOptions {
  /** `redis://host:port` of the workers. */
  url: string;
  /** Where job folders (outputs), uploads and the tile store go. */
  dir: string;
  /** `POST /v1/jobs {"path": ...}` accepts slides inside this folder only. */
  slideRoot: string;
  /** Largest uploaded slide in bytes. */
  maxUploadBytes: number;
  detector: Detector;
  /** The service's detection settings (tile size, resize), applied to every job. */
  detect?: DetectOptions;
  /** Write each slide's Deep Zoom pyramid (`GET /v1/jobs/:id/slide.dzi`, the deep-zoom viewer). */
  deepZoom?: boolean;
  /** The service's cell-type classifier: each slide's cells typed, its differential in the job. */
  classifier?: CellClassifier;
  /** The built viewer is served (`/slide.html`, the deep-zoom viewer, is linked from jobs). */
  viewerPage?: boolean;
}

type Status = 'running' | 'done' | 'failed';

interface JobRecord {
  id: string;
  file: string;
  status: Status;
  submittedAt: string;
  finishedAt?: string;
  progress: { done: number; total: number };
  error?: string;
  result?: {
    width: number;
    height: number;
    count: number;
    counts: Record<string, number>;
    tiles: number;
    tilesSkipped?: number;
    /** With a classifier: the slide's differential count. */
    differential?: DifferentialCount;
    /** With deep zoom: the glass colour to show where no tile was written (glass). */
    deepZoom?: { glass?: string };
  };
}

/** A Deep Zoom tile's path below `slide_files/`: `<level>/<column>_<row>.jpeg`, nothing else. */
const DZ_LEVEL = /^\d{1,2}$/;
const DZ_TILE = /^\d{1,6}_\d{1,6}\.jpeg$/;

const SAFE_NAME = /[^\w.-]+/g;

/**
 * Slide jobs on the service (`bmc serve --queue`): the slide is detected by `bmc worker`s through
 * Redis exactly as `bmc detect --queue` does it (same outputs, same tile store, so a slide already
 * done by the CLI with the same model is not run again), and a web page watches it finish.
 * - `POST /v1/jobs`: `{"path": "<slide on the server>"}` (JSON, inside `slideRoot`) or a multipart
 *   upload (one file field). 202 with the job; the job id is the slide id, so posting the same
 *   slide again returns the same job.
 * - `GET /v1/jobs/:id`: status (`running`, `done`, `failed`), tiles done of total, counts when done.
 * - `GET /v1/jobs/:id/results` (COCO results JSON), `/geojson` (QuPath), `/overview.png`.
 * - With `deepZoom`: `GET /v1/jobs/:id/slide.dzi` (the Deep Zoom descriptor) and
 *   `/slide_files/<level>/<column>_<row>.jpeg` (its tiles; 404 for glass tiles, never written).
 * - `GET /jobs`: a page that submits a slide, shows its progress and opens its overview, or the
 *   deep-zoom viewer (`/slide.html#<id>`, from the built viewer) when the job has a pyramid.
 * A job's record is written next to its outputs, so finished jobs outlive a service restart (a
 * job that was running then is reported failed; posting it again resumes from its finished tiles).
 */
export async function registerJobRoutes(app: FastifyInstance, opts: JobRoutesOptions): Promise<void> {
  await checkRedis(opts.url);
  const dir = resolve(opts.dir);
  const root = await realpath(resolve(opts.slideRoot));
  const store = join(dir, 'tiles');
  const model = await modelHash(opts.detector.path);
  const cls = opts.classifier;
  // Ids of jobs without these options stay what they were: their finished jobs are still found.
  const outputsKey = {
    ...(opts.deepZoom ? { deepZoom: 1 } : {}),
    ...(cls ? { classifier: await modelHash(cls.path), classifierThreshold: cls.threshold } : {}),
  };
  const jobs = new Map<string, JobRecord>();
  const running = new Set<QueueDetection>();
  const recordFile = (id: string) => join(dir, 'jobs', id, 'job.json');
  const save = (r: JobRecord) => writeFileAtomic(recordFile(r.id), `${JSON.stringify(r, null, 1)}\n`);

  const lookup = async (id: string): Promise<JobRecord | undefined> => {
    if (!/^[0-9a-f]{32}$/.test(id)) return undefined;
    const r = jobs.get(id);
    if (r) return r;
    const text = await readFile(recordFile(id), 'utf8').catch(() => undefined);
    if (!text) return undefined;
    const saved = JSON.parse(text) as JobRecord;
    // Running when the service stopped: nobody is assembling it any more.
    if (saved.status === 'running')
      return {
        ...saved,
        status: 'failed',
        error: 'the service stopped during this job: post it again to resume',
      };
    return saved;
  };

  const start = async (file: string): Promise<JobRecord> => {
    const id = resultId({
      v: 1,
      kind: 'service-job',
      input: await fileIdentity(file),
      model,
      detect: opts.detect ?? {},
      ...outputsKey,
    });
    const known = await lookup(id);
    if (known && known.status !== 'failed') return known;
    const record: JobRecord = {
      id,
      file,
      status: 'running',
      submittedAt: new Date().toISOString(),
      progress: { done: 0, total: 0 },
    };
    jobs.set(id, record);
    await save(record);
    const remote = await queueDetection({
      url: opts.url,
      store,
      log: (line) => app.log.info({ job: id }, line),
      onProgress: (_f, done, total) => {
        record.progress = { done, total };
      },
    });
    running.add(remote);
    const progressTimer = setInterval(() => {
      const p = remote.progress()[0];
      if (p) record.progress = { done: p.done, total: p.total };
    }, 500);
    void detectCommand({
      ...opts.detect,
      inputs: [file],
      model: opts.detector,
      out: join(dir, 'jobs', id),
      annotate: false,
      progress: false,
      deepZoom: opts.deepZoom,
      ...(cls ? { classifier: cls } : {}),
      remote,
      log: (line) => app.log.info({ job: id }, line),
    })
      .then((res: DetectCommandResult) => {
        const p = res.processed[0];
        if (!p) throw new Error(res.failed[0]?.error ?? 'no result');
        record.status = 'done';
        record.result = {
          width: p.width,
          height: p.height,
          count: p.count,
          counts: p.counts,
          tiles: p.tiles,
          ...(p.slide ? { tilesSkipped: p.slide.tilesSkipped } : {}),
          ...(p.differential ? { differential: p.differential } : {}),
          ...(p.slide?.deepZoom
            ? { deepZoom: p.slide.deepZoom.glass ? { glass: p.slide.deepZoom.glass } : {} }
            : {}),
        };
      })
      .catch((e: Error) => {
        record.status = 'failed';
        record.error = e.message;
      })
      .finally(async () => {
        clearInterval(progressTimer);
        const p = remote.progress()[0];
        if (p) record.progress = { done: p.done, total: p.total };
        record.finishedAt = new Date().toISOString();
        running.delete(remote);
        await remote.close();
        await save(record).catch((e: Error) =>
          app.log.error({ job: id, err: e }, 'cannot save the job record'),
        );
      });
    return record;
  };

  const view = (r: JobRecord) => ({
    ...r,
    links: {
      self: `/v1/jobs/${r.id}`,
      results: `/v1/jobs/${r.id}/results`,
      geojson: `/v1/jobs/${r.id}/geojson`,
      overview: `/v1/jobs/${r.id}/overview.png`,
      ...(r.result?.deepZoom ? { dzi: `/v1/jobs/${r.id}/${DZI_FILE}` } : {}),
      ...(r.result?.deepZoom && opts.viewerPage ? { viewer: `/slide.html#${r.id}` } : {}),
    },
  });

  app.get('/jobs', async (_req, reply) => reply.type('text/html; charset=utf-8').send(JOBS_PAGE));

  await app.register(async (scope) => {
    // The service accepts no JSON elsewhere; here a job may name a slide on the server.
    scope.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: 64 * 1024 },
      (_req, body, done) => {
        try {
          done(null, JSON.parse(body as string));
        } catch {
          done(Object.assign(new Error('body is not valid JSON'), { statusCode: 400 }), undefined);
        }
      },
    );

    scope.post('/v1/jobs', async (req, reply) => {
      let file: string;
      if (req.isMultipart()) {
        const part = await req.file({ limits: { fileSize: opts.maxUploadBytes, files: 1 } });
        if (!part) return reply.status(400).send({ error: 'multipart body has no file field' });
        const name = basename(part.filename || 'slide').replace(SAFE_NAME, '_') || 'slide';
        const tmpDir = join(dir, 'uploads', `.tmp-${process.pid}-${req.id}`);
        await mkdir(tmpDir, { recursive: true });
        try {
          const tmp = join(tmpDir, name);
          await pipeline(part.file, createWriteStream(tmp));
          if (part.file.truncated)
            return reply.status(413).send({ error: `upload larger than ${opts.maxUploadBytes} bytes` });
          // Stored under its identity: the same slide uploaded twice is one file (and one job).
          const target = join(dir, 'uploads', (await fileIdentity(tmp)).slice(0, 32), name);
          await mkdir(join(target, '..'), { recursive: true });
          if (!existsSync(target)) await rename(tmp, target);
          file = target;
        } finally {
          await rm(tmpDir, { recursive: true, force: true });
        }
      } else {
        const body = req.body as { path?: unknown } | undefined;
        if (!body || typeof body.path !== 'string' || !body.path)
          return reply.status(400).send({
            error: 'send {"path": "<slide file on the server>"} as JSON, or upload the slide as multipart',
          });
        const abs = resolve(root, body.path);
        const real = await realpath(abs).catch(() => undefined);
        if (!real || !(real === root || real.startsWith(root + sep)))
          return reply.status(real ? 403 : 404).send({
            error: real
              ? `${body.path}: outside the slide folder (--slide-root ${root})`
              : `${body.path}: no such file`,
          });
        if (!(await stat(real)).isFile())
          return reply.status(400).send({ error: `${body.path}: not a file` });
        file = real;
      }
      const r = await start(file);
      return reply.status(202).header('Location', `/v1/jobs/${r.id}`).send(view(r));
    });

    scope.get('/v1/jobs/:id', async (req, reply) => {
      const r = await lookup((req.params as { id: string }).id);
      if (!r) return reply.status(404).send({ error: 'no such job' });
      return view(r);
    });

    const output = async (
      id: string,
      reply: FastifyReply,
      pick: (r: JobRecord) => string,
      type: string,
      cache?: string,
    ) => {
      const r = await lookup(id);
      if (!r) return reply.status(404).send({ error: 'no such job' });
      if (r.status !== 'done')
        return reply
          .status(409)
          .send({ error: `job is ${r.status}`, status: r.status, progress: r.progress });
      const bytes = await readFile(join(dir, 'jobs', id, pick(r))).catch(() => undefined);
      // Only slides have a GeoJSON and an overview (an ordinary image's job has results only).
      if (!bytes) return reply.status(404).send({ error: `job ${id} has no ${basename(pick(r))}` });
      reply.type(type);
      if (cache) reply.header('Cache-Control', cache);
      return bytes;
    };
    const stem = (r: JobRecord) => basename(r.file, extname(r.file)).replace(SAFE_NAME, '_') || 'image';
    scope.get('/v1/jobs/:id/results', (req, reply) =>
      output((req.params as { id: string }).id, reply, () => 'results.json', 'application/json'),
    );
    scope.get('/v1/jobs/:id/geojson', (req, reply) =>
      output(
        (req.params as { id: string }).id,
        reply,
        (r) => join('slides', `${stem(r)}.geojson`),
        'application/geo+json',
      ),
    );
    scope.get('/v1/jobs/:id/overview.png', (req, reply) =>
      output(
        (req.params as { id: string }).id,
        reply,
        (r) => join('slides', `${stem(r)}.overview.png`),
        'image/png',
      ),
    );
    // The pyramid is the job's (its id is the slide's identity and the settings): it never changes.
    const immutable = 'private, max-age=86400, immutable';
    scope.get(`/v1/jobs/:id/${DZI_FILE}`, (req, reply) =>
      output(
        (req.params as { id: string }).id,
        reply,
        (r) => join('slides', `${stem(r)}.dz`, DZI_FILE),
        'application/xml',
        immutable,
      ),
    );
    scope.get(`/v1/jobs/:id/${DZI_TILES}/:level/:tile`, (req, reply) => {
      const { id, level, tile } = req.params as { id: string; level: string; tile: string };
      // Digits and one fixed suffix only: no separator, no '..', nothing outside the pyramid.
      if (!DZ_LEVEL.test(level) || !DZ_TILE.test(tile))
        return reply.status(400).send({ error: `not a deep-zoom tile: ${level}/${tile}` });
      return output(
        id,
        reply,
        (r) => join('slides', `${stem(r)}.dz`, DZI_TILES, level, tile),
        'image/jpeg',
        immutable,
      );
    });
  });

  app.addHook('onClose', async () => {
    await Promise.all([...running].map((r) => r.close()));
  });
  app.log.info(`slide jobs on ${safeUrl(opts.url)}: outputs in ${dir}, slides from ${root}`);
}
