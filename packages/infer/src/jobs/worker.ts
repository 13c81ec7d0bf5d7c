import { existsSync } from 'node:fs';
import { InputError, printable } from '@bmc/core';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { decodeToPixels } from '../image.js';
import { type Detector, loadDetector } from '../model.js';
import type { Tile } from '../pipeline/tiling.js';
import type { DetectOptions, PostprocessOverrides } from '../pipeline/types.js';
import { detectSlideTile } from '../slide/detect-slide.js';
import { openSlide, type Slide, type SlideLevel } from '../slide/open.js';
import { checkRedis, JOB_SETTINGS, queueName, redisOptions, safeUrl } from './connection.js';
import { modelHash, writeImageResult, writeTile } from './tile-store.js';

/** A job on a model's queue: one slide tile, or one whole image. Paths are absolute. */
export type DetectJob =
  | {
      v: 1;
      kind: 'tile';
      /** The slide (a pyramidal TIFF) the tile is read from. */
      file: string;
      level: SlideLevel;
      tile: Tile;
      detect: PostprocessOverrides;
      /** Where the tile's detections go (the tile store). */
      result: string;
    }
  | { v: 1; kind: 'image'; file: string; detect: DetectOptions; result: string };

export interface WorkerOptions {
  url: string;
  /** The model file this worker runs; it takes the jobs of that model's queue only. */
  model: string;
  /** Jobs at once. Default 1: onnxruntime already uses every core for one tile. */
  concurrency?: number;
  threads?: number;
  /** BullMQ lock; see JOB_SETTINGS for why 30 s. */
  lockDurationMs?: number;
  /** How often this worker looks for stalled jobs (of dead workers). */
  stalledIntervalMs?: number;
  log?: (line: string) => void;
}

export interface TileWorker {
  readonly queueName: string;
  readonly detector: Detector;
  /** Tiles and images this worker ran, and those it found already done. */
  readonly stats: { ran: number; reused: number; failed: number };
  /** Finishes the jobs in hand, then disconnects. */
  close(): Promise<void>;
}

/**
 * `bmc worker`: takes jobs from the queue of its model and writes each result atomically to the
 * file the job names. A job whose file exists (a tile finished by a worker that died before
 * telling Redis, a rerun) is acknowledged without running. Any number of workers may join or
 * leave at any time; one killed mid-tile leaves its tile locked until the lock expires, then a
 * live worker's stalled-job check puts it back in the queue.
 */
export async function startWorker(opts: WorkerOptions): Promise<TileWorker> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${printable(line)}\n`));
  await checkRedis(opts.url);
  const detector = await loadDetector(opts.model, { threads: opts.threads });
  const name = queueName(await modelHash(opts.model));
  const slides = new SlideCache(8);
  const stats = { ran: 0, reused: 0, failed: 0 };

  const process_ = async (job: Job<DetectJob>) => {
    const d = job.data;
    if (existsSync(d.result)) {
      stats.reused++;
      log(`job ${job.id}: already done`);
      return { reused: true };
    }
    const t0 = performance.now();
    // Said before the work, so a log shows which tile a worker held when it died.
    log(`job ${job.id}: started`);
    let cells: number;
    try {
      if (d.kind === 'tile') {
        const slide = await slides.get(d.file);
        const r = await detectSlideTile(detector, slide, d.level, d.tile, d.detect);
        await writeTile(d.result, r);
        cells = r.scores.length;
      } else {
        const r = await detector.detect(await decodeToPixels(d.file), d.detect);
        await writeImageResult(d.result, r);
        cells = r.detections.length;
      }
    } catch (e) {
      stats.failed++;
      // An unreadable input fails the same way on every worker: no retries.
      if (e instanceof InputError || (e as { kind?: string }).kind === 'input')
        throw new UnrecoverableError((e as Error).message);
      throw e;
    }
    stats.ran++;
    log(`job ${job.id}: ${cells} candidate(s) in ${Math.round(performance.now() - t0)} ms`);
    return { cells };
  };

  const worker = new Worker<DetectJob>(name, process_, {
    connection: redisOptions(opts.url),
    concurrency: opts.concurrency ?? 1,
    lockDuration: opts.lockDurationMs ?? JOB_SETTINGS.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs ?? JOB_SETTINGS.stalledIntervalMs,
    maxStalledCount: JOB_SETTINGS.maxStalledCount,
  });
  let down = false;
  worker.on('error', (e) => {
    // While Redis is away every command fails; said once, then quiet until it is back.
    if (!down) log(`worker: ${e.message} (Redis unreachable? reconnecting)`);
    down = true;
  });
  worker.on('ready', () => {
    if (down) log(`worker: connected again to ${safeUrl(opts.url)}`);
    down = false;
  });
  worker.on('failed', (job, e) => {
    if (job) log(`job ${job.id}: failed (attempt ${job.attemptsMade}): ${e.message}`);
  });
  await worker.waitUntilReady();
  log(`worker on ${safeUrl(opts.url)} ${name}: model ${opts.model}, concurrency ${opts.concurrency ?? 1}`);
  return {
    queueName: name,
    detector,
    stats,
    async close() {
      await worker.close();
      await detector.dispose();
    },
  };
}

/** Open slides by path, the most recently used kept (opening reads the TIFF's directories). */
class SlideCache {
  private readonly map = new Map<string, Promise<Slide>>();
  constructor(private readonly size: number) {}
  get(file: string): Promise<Slide> {
    let s = this.map.get(file);
    if (s) this.map.delete(file);
    else {
      s = openSlide(file);
      s.catch(() => this.map.delete(file));
    }
    this.map.set(file, s);
    while (this.map.size > this.size) this.map.delete(this.map.keys().next().value!);
    return s;
  }
}
