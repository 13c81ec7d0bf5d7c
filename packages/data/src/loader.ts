import { errorKind, InputError } from '@bmc/core';
import { type AugmentConfig, augmentResized, drawResize } from './augment.js';
import type { Dataset } from './dataset.js';
import { DataError } from './errors.js';
import { decodeImage } from './image-io.js';
import { mixSeed, Rng } from './rng.js';
import type { Sample } from './sample.js';

/** Random access to samples; `load` may resize while producing the image (cheaper than after). */
export interface SampleSource {
  readonly length: number;
  /** Size of sample `i` before any transform. */
  size(i: number): { width: number; height: number };
  /** Sample `i` at `width` x `height`, boxes scaled to match. */
  load(i: number, width: number, height: number): Promise<Sample>;
}

/** Images of a dataset, decoded and resized by sharp (libvips runs off the JS thread). */
export function datasetSource(dataset: Dataset): SampleSource {
  return {
    length: dataset.images.length,
    size: (i) => dataset.images[i]!,
    async load(i, width, height) {
      const img = dataset.images[i]!;
      const resized = width !== img.width || height !== img.height;
      const image = await decodeImage(img.file, resized ? { resize: { width, height } } : {});
      if (!resized && (image.width !== img.width || image.height !== img.height)) {
        throw new DataError(
          img.file,
          undefined,
          `decoded ${image.width}x${image.height}, annotation says ${img.width}x${img.height}`,
        );
      }
      const sx = width / img.width;
      const sy = height / img.height;
      const boxes = Float32Array.from(img.boxes);
      for (let k = 0; k < boxes.length; k += 4) {
        boxes[k]! *= sx;
        boxes[k + 1]! *= sy;
        boxes[k + 2]! *= sx;
        boxes[k + 3]! *= sy;
      }
      return { image, boxes, labels: img.labels, id: img.id };
    },
  };
}

/** `B` images of one size, stacked. */
export interface Batch {
  /** `[B, H, W, 3]` float32 (normalised if the config says so). */
  readonly images: Float32Array;
  readonly batchSize: number;
  readonly width: number;
  readonly height: number;
  /** Per image `[N_b, 4]` xyxy in batch pixels. */
  readonly boxes: Float32Array[];
  /** Per image `[N_b]` label indices. */
  readonly labels: Int32Array[];
  /** Source ids (dataset image ids or sample indices). */
  readonly ids: number[];
  /** Positions in the source. */
  readonly indices: number[];
}

export interface LoaderOptions {
  readonly batchSize: number;
  /** Applied to every sample; set `size` so all samples in a batch share one shape. */
  readonly augment: AugmentConfig;
  /** Shuffle each epoch with a seed derived from `seed` and the epoch number. Default true. */
  readonly shuffle?: boolean;
  readonly seed?: number;
  /** Batches decoded ahead of the one being consumed. Default 2. */
  readonly prefetch?: number;
  /** Drop the last incomplete batch. Default false. */
  readonly dropLast?: boolean;
  /**
   * Skip samples that fail to load with a bad-input error (an image that does not decode, a
   * size that does not match its annotation): the batch goes on without them, `onBadSample`
   * hears of each once, and the loader stops with an {@link InputError} only when more than this
   * share of the source's samples has failed. Undefined (default): the first failure ends the
   * epoch, as for evaluation, where a skipped image would bias the metrics.
   */
  readonly maxBadShare?: number;
  /** Told once per failing sample (first failure), with the number failed so far. */
  readonly onBadSample?: (bad: BadSample, failed: number) => void;
  /** Name of the setting behind `maxBadShare`, quoted when the loader stops (e.g. `data.maxBadImageShare`). */
  readonly maxBadShareName?: string;
}

/** A sample that could not be loaded. */
export interface BadSample {
  /** Position in the source. */
  readonly index: number;
  /** The file, when the error names one. */
  readonly file?: string;
  /** What went wrong (the error's message). */
  readonly problem: string;
}

export interface LoaderStats {
  /** Images delivered in the current (or last) epoch. */
  readonly images: number;
  /** Wall time from the epoch's first request to its latest batch. */
  readonly seconds: number;
  readonly imagesPerSecond: number;
  /** Time the consumer spent waiting for batches: near 0 when prefetch keeps up with training. */
  readonly waitSeconds: number;
}

/**
 * Prefetching batch loader. Samples are decoded and augmented ahead of the consumer (decoding
 * overlaps training); each sample's random stream is derived from (seed, epoch, index), so the
 * output does not depend on the order in which concurrent loads finish.
 */
export class BatchLoader {
  private counted = 0;
  private startedAt = 0;
  private lastAt = 0;
  private waited = 0;
  private readonly bad = new Map<number, BadSample>();

  constructor(
    readonly source: SampleSource,
    readonly options: LoaderOptions,
  ) {
    if (!(options.batchSize >= 1)) throw new RangeError(`batchSize must be >= 1, got ${options.batchSize}`);
  }

  /** Number of batches per epoch. */
  get length(): number {
    const n = this.source.length / this.options.batchSize;
    return this.options.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** Sample order of an epoch. */
  order(epoch: number): number[] {
    const idx = Array.from({ length: this.source.length }, (_, i) => i);
    if (this.options.shuffle ?? true) new Rng(mixSeed(this.options.seed ?? 0, epoch)).shuffle(idx);
    return idx;
  }

  /** Samples that failed to load so far (each once, across epochs), when `maxBadShare` is set. */
  get badSamples(): BadSample[] {
    return [...this.bad.values()];
  }

  /** Records a failed sample; throws when it is not skippable or the share is exceeded. */
  private skip(index: number, e: unknown): void {
    const share = this.options.maxBadShare;
    if (share === undefined || errorKind(e) !== 'input') throw e;
    if (!this.bad.has(index)) {
      const file = (e as { file?: unknown }).file;
      const bad = { index, ...(typeof file === 'string' ? { file } : {}), problem: (e as Error).message };
      this.bad.set(index, bad);
      this.options.onBadSample?.(bad, this.bad.size);
    }
    const n = this.source.length;
    if (this.bad.size > share * n) {
      const name = this.options.maxBadShareName ? ` (${this.options.maxBadShareName})` : '';
      throw new InputError(
        `${this.bad.size} of ${n} images failed to load, more than the allowed share ${share}${name}; ` +
          `the latest: ${(e as Error).message}`,
        (e as { file?: string }).file,
      );
    }
  }

  /** Throughput of the current (or last) epoch. */
  get stats(): LoaderStats {
    const seconds = (this.lastAt - this.startedAt) / 1000;
    return {
      images: this.counted,
      seconds,
      imagesPerSecond: seconds > 0 ? this.counted / seconds : 0,
      waitSeconds: this.waited / 1000,
    };
  }

  /** One augmented sample, deterministic in (seed, epoch, index). */
  async sample(index: number, epoch: number): Promise<Sample> {
    const cfg = this.options.augment;
    const rng = new Rng(mixSeed(this.options.seed ?? 0, epoch, index, 0x5eed));
    const size = this.source.size(index);
    const { width, height } = drawResize(rng, size.width, size.height, cfg);
    const s = await this.source.load(index, width, height);
    return augmentResized(rng, s, cfg);
  }

  async *epoch(epoch = 0): AsyncGenerator<Batch> {
    const { batchSize } = this.options;
    const order = this.order(epoch);
    const nBatches = this.length;
    const window = batchSize * (1 + (this.options.prefetch ?? 2));
    const pending: Promise<Sample>[] = [];
    let started = 0;
    let consumed = 0;
    this.counted = 0;
    this.waited = 0;
    this.startedAt = performance.now();
    this.lastAt = this.startedAt;
    const total = Math.min(order.length, nBatches * batchSize);
    const startMore = () => {
      while (started < total && started - consumed < window) {
        const p = this.sample(order[started]!, epoch);
        p.catch(() => {}); // surfaced when awaited, in order
        pending.push(p);
        started++;
      }
    };
    for (let b = 0; b < nBatches; b++) {
      const t0 = performance.now();
      startMore();
      const n = Math.min(batchSize, total - b * batchSize);
      const samples: Sample[] = [];
      const indices: number[] = [];
      for (let k = 0; k < n; k++) {
        const index = order[consumed]!;
        try {
          samples.push(await pending[consumed]!);
          indices.push(index);
        } catch (e) {
          this.skip(index, e);
        }
        pending[consumed] = undefined as unknown as Promise<Sample>;
        consumed++;
        startMore();
      }
      if (!samples.length) continue; // every image of this batch failed: nothing to train on
      const batch = stack(samples, indices);
      this.lastAt = performance.now();
      this.waited += this.lastAt - t0;
      this.counted += samples.length;
      yield batch;
    }
  }
}

function stack(samples: Sample[], indices: number[]): Batch {
  const { width, height } = samples[0]!.image;
  const per = width * height * 3;
  const images = new Float32Array(per * samples.length);
  samples.forEach((s, i) => {
    if (s.image.width !== width || s.image.height !== height) {
      throw new RangeError(
        `batch images differ in size (${s.image.width}x${s.image.height} vs ${width}x${height}); set augment.size`,
      );
    }
    images.set(s.image.data, i * per);
  });
  return {
    images,
    batchSize: samples.length,
    width,
    height,
    boxes: samples.map((s) => s.boxes),
    labels: samples.map((s) => s.labels),
    ids: samples.map((s, i) => s.id ?? indices[i]!),
    indices,
  };
}
