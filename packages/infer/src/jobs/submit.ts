import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { printable } from '@bmc/core';
import { type JobsOptions, Queue } from 'bullmq';
import type { RemoteDetection } from '../detect-command.js';
import type { Detector } from '../model.js';
import type { DetectOptions, DetectResult } from '../pipeline/types.js';
import {
  assembleSlide,
  planSlide,
  type SlideDetectOptions,
  type SlidePlan,
  type SlideResult,
} from '../slide/detect-slide.js';
import { openSlide, type Slide, writeTiledPyramid } from '../slide/open.js';
import { checkRedis, JOB_SETTINGS, queueName, redisOptions, safeUrl } from './connection.js';
import {
  fileIdentity,
  finishedTiles,
  imageFile,
  modelHash,
  readImageResult,
  readTile,
  resultId,
  slideDir,
  tileFile,
} from './tile-store.js';
import type { DetectJob } from './worker.js';

export interface QueueDetectionOptions {
  /** `redis://host:port`. */
  url: string;
  /** The tile store (see tile-store.ts): a folder every worker reaches at the same path. */
  store: string;
  /** Progress and notices. Default stderr. */
  log?: (line: string) => void;
  /** Called whenever an input's finished count changes (the service's job status reads it). */
  onProgress?: (file: string, done: number, total: number) => void;
  /** How often the store and the queue are looked at, ms. Default 500. */
  pollMs?: number;
}

/** Progress of one input, as the service reports it. */
export interface InputProgress {
  file: string;
  kind: 'slide' | 'image';
  id: string;
  done: number;
  total: number;
  reused: number;
  error?: string;
}

interface Pending {
  file: string;
  kind: 'slide' | 'image';
  /** Slide id or image id: the store folder / file and the job ids. */
  id: string;
  /** The file the workers read (a large PNG/JPEG's tiled TIFF copy). */
  source: string;
  /** Tile indices to run (slides); [0] for an image. */
  indices: number[];
  done: Set<number>;
  reused: number;
  error?: Error;
  finished: Promise<void>;
  settle: (e?: Error) => void;
  lastProgress: number;
  lastChecked: number;
  /** Wait before looking up its jobs again: doubles while nothing is found, so a long backlog costs little. */
  checkEvery: number;
  lastLogged: number;
}

/** How long an input may go without a finished tile before its jobs are looked up in Redis (then up to a minute). */
const CHECK_AFTER_MS = 3_000;
const CHECK_MAX_MS = 60_000;
/** Job lookups per check (the missing tiles of one input; more are checked at the next). */
const CHECK_BATCH = 200;
/** Progress lines per input at most this often (and always at 100%). */
const LOG_EVERY_MS = 2_000;

const jobId = (id: string, index: number) => `${id}-${index}`;

/** Slide plans (thumbnails) kept in memory between submission and assembly, at most. */
const KEEP_PLANS_BYTES = 256 << 20;

/**
 * `bmc detect --queue`: the submitter side. Each slide becomes one job per tile with tissue (each
 * image one job), on the model's queue; the workers write each job's result to the tile store,
 * and this side watches the store, then assembles each slide once, from its tile files, with the
 * same cross-tile NMS as a local run.
 *
 * Faults: job ids are deterministic (slide id + tile index), so queueing a tile twice is a no-op
 * in BullMQ and a finished tile (its file exists) is never queued again. When an input makes no
 * progress for a few seconds its missing tiles are looked up: a failed one fails the input (with
 * the worker's reason), a vanished one (Redis restarted without its data) is queued again. A worker
 * killed mid-tile is BullMQ's stalled-job case: its lock expires and another worker takes the tile.
 */
export class QueueDetection implements RemoteDetection {
  private queue?: Queue;
  private detector?: Detector;
  private slideOpts: SlideDetectOptions = {};
  private readonly pending = new Map<string, Pending>();
  private timer?: NodeJS.Timeout;
  private sweeping = false;
  private closed = false;
  private lastNoWorker = 0;
  private readonly log: (line: string) => void;
  private readonly store: string;

  constructor(private readonly opts: QueueDetectionOptions) {
    this.log = opts.log ?? ((line) => process.stderr.write(`${printable(line)}\n`));
    this.store = resolve(opts.store);
  }

  /** The model's queue name (after `submit`). */
  get queueName(): string | undefined {
    return this.queue?.name;
  }

  progress(): InputProgress[] {
    return [...this.pending.values()].map((p) => ({
      file: p.file,
      kind: p.kind,
      id: p.id,
      done: p.done.size,
      total: p.indices.length,
      reused: p.reused,
      ...(p.error ? { error: p.error.message } : {}),
    }));
  }

  async submit(
    inputs: ReadonlyArray<{ file: string; slide: boolean }>,
    detector: Detector,
    opts: SlideDetectOptions,
  ): Promise<void> {
    this.detector = detector;
    this.slideOpts = opts;
    const model = await modelHash(detector.path);
    if (!this.queue) {
      this.queue = new Queue(queueName(model), { connection: redisOptions(this.opts.url) });
      // Connection errors during a Redis restart: ioredis reconnects; the sweep logs the wait.
      this.queue.on('error', () => {});
    }
    this.log(
      `queue ${safeUrl(this.opts.url)} ${this.queue.name} (model ${model.slice(0, 12)}), tile store ${this.store}`,
    );
    // A previous run's failed jobs would block re-queueing under the same ids: read once, removed per input.
    this.failedJobs = await this.queue.getJobs(['failed']);
    for (const { file, slide } of inputs) {
      const p = this.newPending(file, slide ? 'slide' : 'image');
      try {
        if (slide) await this.submitSlide(p, model, detector, opts);
        else await this.submitImage(p, model, opts);
      } catch (e) {
        p.settle(e as Error);
      }
    }
    this.schedule();
  }

  private newPending(file: string, kind: Pending['kind']): Pending {
    let settle!: (e?: Error) => void;
    const p: Pending = {
      file,
      kind,
      id: '',
      source: resolve(file),
      indices: [],
      done: new Set(),
      reused: 0,
      finished: new Promise<void>((ok) => {
        settle = (e) => {
          if (e && !p.error) p.error = e;
          ok();
        };
      }),
      settle: (e) => settle(e),
      lastProgress: Date.now(),
      lastChecked: Date.now(),
      checkEvery: CHECK_AFTER_MS,
      lastLogged: 0,
    };
    this.pending.set(file, p);
    return p;
  }

  private async submitSlide(p: Pending, model: string, detector: Detector, opts: SlideDetectOptions) {
    p.id = resultId({
      v: 1,
      kind: 'slide',
      input: await fileIdentity(p.file),
      model,
      tiling: { tileSize: opts.tileSize, tileOverlap: opts.tileOverlap, downsample: opts.downsample ?? 1 },
      detect: postprocess(opts),
    });
    const slide = await this.openTiled(p);
    const plan = await planSlide(slide, detector.meta, opts);
    p.indices = plan.toRun;
    // The plan (its thumbnail: up to 4096 x 4096 x 3 bytes) is kept for the assembly while few
    // are kept; past that budget a slide is planned again when it is assembled (about a second).
    if (this.keptBytes + plan.thumbnail.data.length <= KEEP_PLANS_BYTES) {
      this.keptBytes += plan.thumbnail.data.length;
      this.plans.set(p.file, plan);
    }
    const done = await finishedTiles(this.store, p.id);
    const missing = p.indices.filter((i) => !done.has(i));
    p.reused = p.indices.length - missing.length;
    for (const i of p.indices) if (done.has(i)) p.done.add(i);
    await this.clearFailed(p.id);
    await this.queue!.addBulk(
      missing.map((i) => ({
        name: 'tile',
        data: {
          v: 1,
          kind: 'tile',
          file: p.source,
          level: plan.level,
          tile: plan.tiles[i]!,
          detect: postprocess(opts),
          result: tileFile(this.store, p.id, i),
        } satisfies DetectJob,
        opts: jobOptions(jobId(p.id, i)),
      })),
    );
    this.log(
      `${p.file}: slide ${slide.width}x${slide.height}, ${p.indices.length} of ${plan.tiles.length} tiles with tissue` +
        (p.reused ? `, ${p.reused} already done (reused from ${slideDir(this.store, p.id)})` : '') +
        `, ${missing.length} queued`,
    );
    if (missing.length === 0) p.settle();
  }

  private async submitImage(p: Pending, model: string, opts: DetectOptions) {
    p.id = resultId({
      v: 1,
      kind: 'image',
      input: await fileIdentity(p.file),
      model,
      detect: {
        ...postprocess(opts),
        resizeLongSide: opts.resizeLongSide,
        tileSize: opts.tileSize,
        tileOverlap: opts.tileOverlap,
      },
    });
    p.indices = [0];
    const result = imageFile(this.store, p.id);
    if (existsSync(result)) {
      p.done.add(0);
      p.reused = 1;
      p.settle();
      return;
    }
    await this.clearFailed(p.id);
    const data: DetectJob = {
      v: 1,
      kind: 'image',
      file: p.source,
      detect: {
        ...postprocess(opts),
        ...defined({
          resizeLongSide: opts.resizeLongSide,
          tileSize: opts.tileSize,
          tileOverlap: opts.tileOverlap,
        }),
      },
      result,
    };
    await this.queue!.add('image', data, jobOptions(jobId(p.id, 0)));
  }

  /**
   * The slide to read regions from. A pyramidal TIFF is read in place; a large PNG/JPEG (one
   * level) is converted once, streaming, to a tiled TIFF in the store (every worker reads that
   * copy, and a rerun reuses it).
   */
  private async openTiled(p: Pending): Promise<Slide> {
    const slide = await openSlide(p.source);
    if (slide.levels.length > 1) return slide;
    const tiled = join(slideDir(this.store, p.id), 'slide.tif');
    if (!existsSync(tiled)) {
      await mkdir(slideDir(this.store, p.id), { recursive: true });
      const tmp = `${tiled}.${process.pid}.tmp`;
      try {
        await writeTiledPyramid(p.source, tmp);
        await rename(tmp, tiled);
      } finally {
        await rm(tmp, { force: true });
      }
    }
    p.source = tiled;
    const copy = await openSlide(tiled);
    // Level-0 size stays the original's (identical: the copy is pixel for pixel).
    return copy;
  }

  private failedJobs: Awaited<ReturnType<Queue['getJobs']>> = [];

  /** A previous run's failed jobs of this input would block re-queueing (same ids): removed. */
  private async clearFailed(id: string) {
    await Promise.all(this.failedJobs.filter((j) => j.id?.startsWith(`${id}-`)).map((j) => j.remove()));
  }

  private readonly plans = new Map<string, SlidePlan>();
  private keptBytes = 0;

  async slide(file: string): Promise<SlideResult> {
    const p = await this.finished(file);
    const slide = await openSlide(p.source);
    // Planned again (deterministic) unless kept: the thumbnail is not held for every queued slide.
    const kept = this.plans.get(file);
    if (kept) {
      this.plans.delete(file);
      this.keptBytes -= kept.thumbnail.data.length;
    }
    const plan = kept ?? (await planSlide(slide, this.detector!.meta, this.slideOpts));
    if (plan.toRun.join() !== p.indices.join())
      throw new Error(`${file}: the slide's tiles changed while it was detected`);
    const parts = await Promise.all(p.indices.map((i) => readTile(tileFile(this.store, p.id, i))));
    return {
      width: slide.width,
      height: slide.height,
      level: plan.level,
      detections: assembleSlide(parts, plan.level, this.detector!.meta, this.slideOpts),
      tiles: {
        planned: plan.tiles.length,
        run: plan.toRun.length,
        skipped: plan.tiles.length - plan.toRun.length,
      },
      tissue: plan.tissue,
      thumbnail: plan.thumbnail,
    };
  }

  async image(file: string): Promise<DetectResult> {
    const p = await this.finished(file);
    return readImageResult(imageFile(this.store, p.id));
  }

  private async finished(file: string): Promise<Pending> {
    const p = this.pending.get(file);
    if (!p) throw new Error(`${file}: was not submitted`);
    await p.finished;
    if (p.error) throw p.error;
    return p;
  }

  /** Waits for every submitted input (the service uses this; `bmc detect` awaits them one by one). */
  async all(): Promise<void> {
    await Promise.all([...this.pending.values()].map((p) => p.finished));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const p of this.pending.values())
      if (p.done.size < p.indices.length) p.settle(new Error(`${p.file}: detection stopped`));
    await this.queue?.close();
  }

  private schedule() {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sweep().finally(() => {
        if ([...this.pending.values()].some((p) => !p.error && p.done.size < p.indices.length))
          this.schedule();
      });
    }, this.opts.pollMs ?? 500);
  }

  /** One look at the store (progress) and, for inputs that stopped moving, at the queue. */
  private async sweep() {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      for (const p of this.pending.values()) {
        if (this.closed) return;
        if (p.error || p.done.size === p.indices.length) continue;
        const before = p.done.size;
        if (p.kind === 'slide') {
          const done = await finishedTiles(this.store, p.id);
          for (const i of p.indices) if (done.has(i)) p.done.add(i);
        } else if (existsSync(imageFile(this.store, p.id))) p.done.add(0);
        const now = Date.now();
        if (p.done.size > before) {
          p.lastProgress = now;
          p.checkEvery = CHECK_AFTER_MS;
          this.opts.onProgress?.(p.file, p.done.size, p.indices.length);
        }
        const complete = p.done.size === p.indices.length;
        if (p.kind === 'slide' && p.done.size > before && (complete || now - p.lastLogged >= LOG_EVERY_MS)) {
          p.lastLogged = now;
          const pct = ((100 * p.done.size) / p.indices.length).toFixed(0);
          const workers = await this.queue!.getWorkersCount();
          this.log(
            `${p.file}: ${p.done.size}/${p.indices.length} tiles (${pct}%), ${workers} worker(s) on the queue`,
          );
        }
        if (complete) {
          p.settle();
          continue;
        }
        if (now - Math.max(p.lastProgress, p.lastChecked) >= p.checkEvery) {
          p.lastChecked = now;
          if (!(await this.checkJobs(p))) p.checkEvery = Math.min(2 * p.checkEvery, CHECK_MAX_MS);
        }
      }
    } catch (e) {
      this.log(`queue: ${(e as Error).message} (retrying)`);
    } finally {
      this.sweeping = false;
    }
  }

  /**
   * The missing tiles of an input that stopped moving: failed ones fail it, vanished ones are
   * queued again. True when it found either.
   */
  private async checkJobs(p: Pending): Promise<boolean> {
    const queue = this.queue!;
    const missing = p.indices.filter((i) => !p.done.has(i)).slice(0, CHECK_BATCH);
    let requeued = 0;
    for (const i of missing) {
      const id = jobId(p.id, i);
      const job = await queue.getJob(id);
      if (!job) {
        // Gone from Redis without a result file: Redis restarted without its data (or the key was
        // evicted). The job is rebuilt; a worker that still finishes the old one only finds the file done.
        if (existsSync(p.kind === 'slide' ? tileFile(this.store, p.id, i) : imageFile(this.store, p.id)))
          continue;
        await this.requeue(p, i);
        requeued++;
        continue;
      }
      if (await job.isFailed()) {
        p.settle(
          new Error(
            `${p.file}: ${p.kind === 'slide' ? `tile ${i}` : 'detection'} failed on a worker after ${job.attemptsMade} attempt(s): ${job.failedReason}`,
          ),
        );
        return true;
      }
    }
    if (requeued)
      this.log(`${p.file}: ${requeued} job(s) were no longer in Redis (restarted?): queued again`);
    const now = Date.now();
    if (now - this.lastNoWorker > 30_000 && (await queue.getWorkersCount()) === 0) {
      this.lastNoWorker = now;
      this.log(
        `waiting: no worker on ${queue.name}; start one with: bmc worker --queue ${safeUrl(this.opts.url)} -m ${this.detector!.path}`,
      );
    }
    return requeued > 0;
  }

  private requeueData = new Map<string, DetectJob>();

  private async requeue(p: Pending, i: number) {
    // The job's data is rebuilt from the plan (kept small: only on this rare path).
    const key = jobId(p.id, i);
    let data = this.requeueData.get(key);
    if (!data) {
      if (p.kind === 'slide') {
        const slide = await openSlide(p.source);
        const plan = await planSlide(slide, this.detector!.meta, this.slideOpts);
        for (const k of p.indices)
          this.requeueData.set(jobId(p.id, k), {
            v: 1,
            kind: 'tile',
            file: p.source,
            level: plan.level,
            tile: plan.tiles[k]!,
            detect: postprocess(this.slideOpts),
            result: tileFile(this.store, p.id, k),
          });
      } else {
        const o = this.slideOpts;
        this.requeueData.set(key, {
          v: 1,
          kind: 'image',
          file: p.source,
          detect: {
            ...postprocess(o),
            ...defined({
              resizeLongSide: o.resizeLongSide,
              tileSize: o.tileSize,
              tileOverlap: o.tileOverlap,
            }),
          },
          result: imageFile(this.store, p.id),
        });
      }
      data = this.requeueData.get(key)!;
    }
    await this.queue!.add(data.kind, data, jobOptions(key));
  }
}

/** Connects (after checking that Redis answers, else a usage error naming the URL). */
export async function queueDetection(opts: QueueDetectionOptions): Promise<QueueDetection> {
  await checkRedis(opts.url);
  return new QueueDetection(opts);
}

function jobOptions(jobId: string): JobsOptions {
  return {
    jobId,
    attempts: JOB_SETTINGS.attempts,
    backoff: { type: 'exponential', delay: JOB_SETTINGS.backoffMs },
    // The result is the file; a completed job has nothing left to keep.
    removeOnComplete: true,
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

/** The post-processing options that change a tile's detections. */
function postprocess(o: DetectOptions) {
  return defined({
    scoreThreshold: o.scoreThreshold,
    iouThreshold: o.iouThreshold,
    maxDetections: o.maxDetections,
  });
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
