import { mkdir } from 'node:fs/promises';
import { basename, extname, join, relative, resolve } from 'node:path';
import { type CellCall, type DifferentialCount, sumDifferentials, UNCLASSIFIED } from '@bmc/classify';
import { printable, UsageError } from '@bmc/core';
import { writeFileAtomic as writeAtomic } from '@bmc/data';
import cliProgress from 'cli-progress';
import { annotate, crops } from './annotate.js';
import { type CellClassifier, imageDifferential, loadCellClassifier } from './cell-classifier.js';
import { decodeToPixels } from './image.js';
import { expandInputs } from './inputs.js';
import { MAX_RESIZE_LONG_SIDE } from './limits.js';
import { type Detector, loadDetector } from './model.js';
import { outputWriteError, prepareOutputDir } from './output-dir.js';
import {
  atThreshold,
  type CountingThreshold,
  countingThreshold,
  describeCountingThreshold,
} from './pipeline/operating-point.js';
import { type CocoResult, countByClass, toCocoResults } from './pipeline/results.js';
import { type AppliedScale, applyPixelScale } from './pipeline/scale.js';
import type { Detection, DetectOptions, DetectResult, RawPixels } from './pipeline/types.js';
import { classifySlideCells } from './slide/classify-slide.js';
import { DZI_FILE, writeDeepZoom } from './slide/deep-zoom.js';
import { detectSlide, type SlideDetectOptions, type SlideResult } from './slide/detect-slide.js';
import { isSlide, openSlide } from './slide/open.js';
import { overviewPng, toQuPathGeoJson } from './slide/outputs.js';
import { glassColour } from './slide/tissue.js';

export interface DetectCommandOptions extends DetectOptions {
  /** Image files, folders (searched recursively) or globs. */
  inputs: readonly string[];
  /** A bmc ONNX detector (from `bmc export`), or an already loaded one. */
  model: string | Detector;
  /** Output folder; created if missing. */
  out: string;
  /** Write annotated copies under `<out>/annotated/`. Default true. */
  annotate?: boolean;
  /** Write one PNG per detected cell under `<out>/crops/<image>/`. Default false. */
  crops?: boolean;
  /** Margin around each crop, as a fraction of the box size. Default 0.1. */
  cropMargin?: number;
  /**
   * A cell-type classifier (`bmc classify export`): every counted cell gets a type and probability.
   * A path, or one already loaded (not disposed here).
   */
  classifier?: string | CellClassifier;
  /** Below this best-class probability a cell is counted as "unclassified". Default 0.5. */
  classifierThreshold?: number;
  /** onnxruntime threads. Default: all cores. */
  threads?: number;
  /** Progress bar on stderr. Default: when stderr is a terminal. */
  progress?: boolean;
  /** Where messages go (failures, summary). Default stderr. */
  log?: (line: string) => void;
  /** Slides: level-0 pixels per network pixel, which picks the pyramid level. Default 1. */
  slideDownsample?: number;
  /** Slides: skip glass tiles by a tissue mask from a low-resolution level. Default true. */
  tissueMask?: boolean;
  /**
   * Slides: also write a Deep Zoom pyramid of the full-resolution slide, `slides/<name>.dz/slide.dzi`
   * and its `slide_files/`, for the deep-zoom viewer (JPEG tiles; tiles of bare glass are not
   * written). Default false: the pyramid re-encodes 4/3 of the slide's level-0 pixels as JPEG
   * tiles, up to ~33,000 files for a 40,000 px square slide, which a lab keeps only for the slides
   * it reviews on screen.
   */
  deepZoom?: boolean;
  /**
   * Detections run elsewhere (`bmc detect --queue`: workers on Redis). Every input is handed over
   * first so workers can start on all of them; each input's result is then awaited in turn and
   * written exactly as a local run writes it.
   */
  remote?: RemoteDetection;
}

/** Where `bmc detect --queue` gets its detections from: see `jobs/submit.ts`. */
export interface RemoteDetection {
  /** Queues every input (slides as tile jobs, images as one job each); per-file problems surface on `slide`/`image`. */
  submit(
    inputs: ReadonlyArray<{ file: string; slide: boolean }>,
    detector: Detector,
    opts: SlideDetectOptions,
  ): Promise<void>;
  /** The slide's result, assembled from its tiles' results once they are all in. */
  slide(file: string): Promise<SlideResult>;
  /** An image's detections (every candidate, as `detector.detect` returns them). */
  image(file: string): Promise<DetectResult>;
}

export interface ImageSummary {
  id: number;
  file: string;
  width: number;
  height: number;
  count: number;
  counts: Record<string, number>;
  tiles: number;
  ms: number;
  /** With a classifier: the differential count of this image's cells. */
  differential?: DifferentialCount;
  /** With a classifier: milliseconds of `ms` spent cutting, classifying and counting the cells. */
  classifyMs?: number;
  /** Slides (pyramidal TIFF, or an image above 64 megapixels): read region by region. */
  slide?: {
    level: number;
    downsample: number;
    tilesSkipped: number;
    tissue: number;
    geojson: string;
    overview: string;
    /** With `deepZoom`: the folder of the slide's Deep Zoom pyramid and the glass colour shown where no tile was written. */
    deepZoom?: { dzi: string; glass?: string };
  };
}

export interface DetectCommandResult {
  processed: ImageSummary[];
  /** The threshold `count`, counts.csv, annotated images and crops use (results.json keeps every candidate). */
  counting: CountingThreshold;
  /** Images that could not be read or processed, with the reason. */
  failed: Array<{ file: string; error: string }>;
  /** Paths of the files written. */
  outputs: {
    results: string;
    images: string;
    counts: string;
    failed?: string;
    annotated?: string;
    crops?: string;
    differential?: string;
  };
  /** With a classifier: the differential over every image. */
  differential?: DifferentialCount;
}

const csvField = (v: string | number) => {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/**
 * `bmc detect`: runs the detector over images, folders or globs and writes
 * - `results.json`: COCO results (`[{image_id, category_id, bbox: [x,y,w,h], score}]`), every
 *   candidate above the model's candidate threshold (0.05, what AP needs) or above `scoreThreshold`,
 * - `images.json`: the COCO `images` and `categories` those ids refer to,
 * - `counts.csv`: per image the number of cells, and per class, at the counting threshold: the
 *   model's operating point (best F1 on validation) unless `scoreThreshold` is given,
 * - `annotated/<name>.png`: boxes and scores drawn on each image (unless `annotate: false`),
 * - `crops/<name>/<k>_<class>.png`: one image per cell (with `crops: true`),
 * - `failed.csv`: images that could not be read, with the reason (only when there are any).
 * A corrupt image is reported and skipped; the batch goes on.
 */
export async function detectCommand(opts: DetectCommandOptions): Promise<DetectCommandResult> {
  // Lines quote file names and decoder messages: escaped, so a crafted name cannot drive the terminal.
  const log = opts.log ?? ((line: string) => process.stderr.write(`${printable(line)}\n`));
  if (opts.resizeLongSide !== undefined && !(opts.resizeLongSide <= MAX_RESIZE_LONG_SIDE))
    throw new UsageError(`--resize ${opts.resizeLongSide}: at most ${MAX_RESIZE_LONG_SIDE} px`);
  const files = await expandInputs(opts.inputs);
  const detector =
    typeof opts.model === 'string' ? await loadDetector(opts.model, { threads: opts.threads }) : opts.model;
  const meta = detector.meta;
  // Which pixel scale applies and why: the most common cause of a model that finds nothing.
  const applied = applyPixelScale(meta, opts);
  checkTiling(applied, meta.input.sizeMultiple);
  log(applied.description);
  const classifierThreshold =
    opts.classifierThreshold ?? (typeof opts.classifier === 'object' ? opts.classifier.threshold : 0.5);
  const classifier =
    typeof opts.classifier === 'string'
      ? await loadCellClassifier(opts.classifier, classifierThreshold, opts.threads)
      : opts.classifier;
  if (classifier)
    log(
      `classifier ${classifier.path}: ${classifier.classNames.length} types, ${classifier.cropSize} px crops, below probability ${classifierThreshold} counted as unclassified`,
    );
  const cellTypes: {
    file: string;
    cells: { box: number[]; score: number; type: string; probability: number }[];
  }[] = [];
  const recordCellTypes = (file: string, cells: Detection[], calls: CellCall[], cls: CellClassifier) =>
    cellTypes.push({
      file,
      cells: cells.map((d, k) => ({
        box: d.box,
        score: d.score,
        type: calls[k]!.type >= 0 ? cls.classNames[calls[k]!.type]! : UNCLASSIFIED,
        probability: calls[k]!.probability,
      })),
    });
  const counting = countingThreshold(meta, opts.scoreThreshold);
  log(`counting cells at ${describeCountingThreshold(counting, '--score')}`);
  const out = resolve(opts.out);
  const annotatedDir = join(out, 'annotated');
  const cropsDir = join(out, 'crops');
  await prepareOutputDir(out, [
    ...(opts.annotate !== false ? ['annotated'] : []),
    ...(opts.crops ? ['crops'] : []),
  ]);
  // A write that fails for the folder (full disk, read-only) stops the run with one message.
  const writeFileAtomic = (file: string, data: string | Uint8Array) =>
    writeAtomic(file, data).catch((e: unknown) => {
      throw outputWriteError(e, out) ?? e;
    });

  const showBar = opts.progress ?? Boolean(process.stderr.isTTY);
  const bar = showBar
    ? new cliProgress.SingleBar(
        {
          format:
            'detect |{bar}| {value}/{total} images | {cells} cells | {failed} failed | eta {eta_formatted}',
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  bar?.start(files.length, 0, { cells: 0, failed: 0 });

  const slidesDir = join(out, 'slides');
  /**
   * One slide, region by region: its candidates join results.json like an image's; the cells at
   * the counting threshold go to `slides/<name>.geojson` (QuPath) and `slides/<name>.overview.png`.
   */
  const slideOpts: SlideDetectOptions = {
    ...opts,
    downsample: opts.slideDownsample,
    noTissueMask: opts.tissueMask === false,
  };
  const detectSlideFile = async (file: string, name: string, id: number) => {
    const r = opts.remote ? await opts.remote.slide(file) : await detectSlide(detector, file, slideOpts);
    const kept: Detection[] = r.detections.filter((d) => d.score >= counting.scoreThreshold);
    await mkdir(slidesDir, { recursive: true });
    const geojson = join(slidesDir, `${name}.geojson`);
    const overview = join(slidesDir, `${name}.overview.png`);
    const typed = classifier ? await typeCells(file, r.level.page, kept, classifier) : undefined;
    // With a classifier QuPath's classification is the cell type (unclassified below the threshold).
    const features = typed
      ? kept.map((d, k) => {
          const t = typed.calls[k]!.type;
          return { ...d, className: t >= 0 ? classifier!.classNames[t]! : UNCLASSIFIED, classId: t + 1 };
        })
      : kept;
    await writeFileAtomic(geojson, `${JSON.stringify(toQuPathGeoJson(features))}\n`);
    await writeFileAtomic(overview, await overviewPng(r.thumbnail, r, kept));
    const dz = opts.deepZoom ? await deepZoom(file, name, r.thumbnail) : undefined;
    results.push(...toCocoResults(r.detections, id));
    log(
      `${file}: slide ${r.width}x${r.height}, level ${r.level.page} (downsample ${r.level.downsample.toFixed(2)}), ` +
        `${r.tiles.run} of ${r.tiles.planned} tiles run (${r.tiles.skipped} glass skipped), ${kept.length} cell(s)`,
    );
    return {
      id,
      file,
      width: r.width,
      height: r.height,
      count: kept.length,
      counts: countByClass(kept, meta.classNames),
      tiles: r.tiles.run,
      slide: {
        level: r.level.page,
        downsample: r.level.downsample,
        tilesSkipped: r.tiles.skipped,
        tissue: r.tissue,
        geojson,
        overview,
        ...(dz
          ? { deepZoom: { dzi: join(dz.dir, DZI_FILE), ...(dz.glass ? { glass: dz.glass } : {}) } }
          : {}),
      },
      ...(typed ? { differential: typed.differential, classifyMs: typed.ms } : {}),
    };
  };
  /** The slide's Deep Zoom pyramid, glass tiles left out (the glass colour from the thumbnail). */
  const deepZoom = async (file: string, name: string, thumbnail: RawPixels) => {
    const glass = glassColour(thumbnail);
    return writeDeepZoom(file, join(slidesDir, `${name}.dz`), glass ? { glass } : {}).catch((e: unknown) => {
      throw outputWriteError(e, out) ?? e;
    });
  };
  /** A slide's counted cells typed from region reads of the level they were detected on. */
  const typeCells = async (file: string, page: number, kept: Detection[], cls: CellClassifier) => {
    const tc = performance.now();
    const slide = await openSlide(file);
    const level = slide.levels.find((l) => l.page === page) ?? slide.levels[0]!;
    const calls = await classifySlideCells(
      cls,
      slide,
      level,
      kept.map((d) => d.box),
    );
    recordCellTypes(file, kept, calls, cls);
    return {
      calls,
      differential: imageDifferential(calls, cls, classifierThreshold),
      ms: performance.now() - tc,
    };
  };
  const names = uniqueStems(files);
  const processed: ImageSummary[] = [];
  const failed: DetectCommandResult['failed'] = [];
  const results: CocoResult[] = [];
  let cells = 0;
  try {
    // With a queue, each input is a slide or an image as it was when queued (a file that vanishes
    // afterwards fails with the worker's reason, not as an unreadable image).
    let kinds: boolean[] | undefined;
    if (opts.remote) {
      kinds = await Promise.all(files.map((f) => isSlide(f)));
      await opts.remote.submit(
        files.map((file, i) => ({ file, slide: kinds![i]! })),
        detector,
        slideOpts,
      );
    }
    for (let i = 0; i < files.length; i++) {
      const file = files[i]!;
      const id = i + 1;
      const t0 = performance.now();
      try {
        const name = names[i]!;
        if (kinds ? kinds[i] : await isSlide(file)) {
          const s = await detectSlideFile(file, name, id);
          processed.push({ ...s, ms: performance.now() - t0 });
          cells += s.count;
          bar?.update(i + 1, { cells, failed: failed.length });
          continue;
        }
        const image = await decodeToPixels(file);
        const all = opts.remote ? await opts.remote.image(file) : await detector.detect(image, opts);
        const res = atThreshold(all, counting.scoreThreshold);
        if (opts.annotate !== false) {
          await writeFileAtomic(join(annotatedDir, `${name}.png`), await annotate(image, res.detections));
        }
        if (opts.crops && res.detections.length) {
          const dir = join(cropsDir, name);
          await mkdir(dir, { recursive: true });
          const pngs = await crops(image, res.detections, opts.cropMargin);
          await Promise.all(
            pngs.map((png, k) =>
              writeFileAtomic(
                join(dir, `${String(k + 1).padStart(4, '0')}_${res.detections[k]!.className}.png`),
                png,
              ),
            ),
          );
        }
        let differential: DifferentialCount | undefined;
        let classifyMs: number | undefined;
        if (classifier) {
          const tc = performance.now();
          const calls = await classifier.classify(
            image,
            res.detections.map((d) => d.box),
          );
          differential = imageDifferential(calls, classifier, classifierThreshold);
          classifyMs = performance.now() - tc;
          recordCellTypes(file, res.detections, calls, classifier);
        }
        results.push(...toCocoResults(all.detections, id));
        cells += res.detections.length;
        processed.push({
          id,
          file,
          width: res.width,
          height: res.height,
          count: res.detections.length,
          counts: countByClass(res.detections, meta.classNames),
          tiles: res.tiles,
          ms: performance.now() - t0,
          ...(differential ? { differential, classifyMs } : {}),
        });
      } catch (e) {
        const fatal = outputWriteError(e, out);
        if (fatal) throw fatal;
        const error = (e as Error).message.startsWith(file)
          ? (e as Error).message.slice(file.length + 2)
          : (e as Error).message;
        failed.push({ file, error });
        if (bar) bar.stop();
        log(`skipped ${file}: ${error}`);
        if (bar) bar.start(files.length, i, { cells, failed: failed.length });
      }
      bar?.update(i + 1, { cells, failed: failed.length });
    }
  } finally {
    bar?.stop();
    if (typeof opts.model === 'string') await detector.dispose();
    if (typeof opts.classifier === 'string') await classifier?.dispose();
  }

  const base = commonBase(files);
  const outputs: DetectCommandResult['outputs'] = {
    results: join(out, 'results.json'),
    images: join(out, 'images.json'),
    counts: join(out, 'counts.csv'),
    ...(opts.annotate !== false ? { annotated: annotatedDir } : {}),
    ...(opts.crops ? { crops: cropsDir } : {}),
  };
  await writeFileAtomic(outputs.results, `${JSON.stringify(results)}\n`);
  const images = {
    images: processed.map((p) => ({
      id: p.id,
      file_name: relative(base, p.file),
      width: p.width,
      height: p.height,
    })),
    categories: meta.classNames.map((name, k) => ({ id: k + 1, name })),
  };
  await writeFileAtomic(outputs.images, `${JSON.stringify(images, null, 1)}\n`);
  const header = ['file', 'width', 'height', 'count', ...(meta.classNames.length > 1 ? meta.classNames : [])];
  const rows = processed.map((p) =>
    [
      relative(base, p.file),
      p.width,
      p.height,
      p.count,
      ...(meta.classNames.length > 1 ? meta.classNames.map((c) => p.counts[c] ?? 0) : []),
    ]
      .map(csvField)
      .join(','),
  );
  await writeFileAtomic(outputs.counts, `${[header.map(csvField).join(','), ...rows].join('\n')}\n`);
  if (failed.length) {
    outputs.failed = join(out, 'failed.csv');
    const lines = [
      'file,error',
      ...failed.map((f) => `${csvField(relative(base, f.file))},${csvField(f.error)}`),
    ];
    await writeFileAtomic(outputs.failed, `${lines.join('\n')}\n`);
  }
  let runDifferential: DifferentialCount | undefined;
  if (classifier) {
    runDifferential = sumDifferentials(processed.flatMap((p) => (p.differential ? [p.differential] : [])));
    outputs.differential = join(out, 'differential.csv');
    await writeFileAtomic(outputs.differential, differentialCsv(processed, base, runDifferential));
    await writeFileAtomic(join(out, 'cell-types.json'), `${JSON.stringify(cellTypes)}\n`);
    if (runDifferential)
      log(
        `differential (${runDifferential.total} nucleated cells, probability >= ${classifierThreshold}): ` +
          runDifferential.rows.map((r) => `${r.type} ${r.count} (${r.percent.toFixed(1)}%)`).join(', '),
      );
  }
  log(
    `detect: ${processed.length} image(s), ${cells} cell(s)` +
      (failed.length ? `, ${failed.length} skipped (see ${outputs.failed})` : '') +
      ` -> ${out}`,
  );
  return {
    processed,
    counting,
    failed,
    outputs,
    ...(runDifferential ? { differential: runDifferential } : {}),
  };
}

/** differential.csv: per image, then the run ("all images"), count and percent of each type. */
function differentialCsv(
  processed: ImageSummary[],
  base: string,
  run: DifferentialCount | undefined,
): string {
  const types = run?.rows.map((r) => r.type) ?? [];
  const header = ['file', 'nucleated', ...types.flatMap((t) => [t, `${t} %`])];
  const line = (file: string, d: DifferentialCount) =>
    [file, d.total, ...d.rows.flatMap((r) => [r.count, r.percent.toFixed(2)])].map(csvField).join(',');
  const rows = processed.flatMap((p) =>
    p.differential ? [line(relative(base, p.file), p.differential)] : [],
  );
  if (run) rows.push(line('all images', run));
  return `${[header.map(csvField).join(','), ...rows].join('\n')}\n`;
}

/**
 * Tiles must overlap less than their side, by at least the model's size multiple when images run
 * at source resolution: checked once, before any image, so a bad pair is a usage error rather than
 * a failure of every image.
 */
function checkTiling(s: AppliedScale, sizeMultiple: number): void {
  if (s.tileSize <= 0) return;
  if (s.tileOverlap >= s.tileSize)
    throw new UsageError(
      `--tile ${s.tileSize} --tile-overlap ${s.tileOverlap}: the overlap must be smaller than the tile`,
    );
  const align = s.resizeLongSide ? 1 : sizeMultiple;
  if (Math.floor((s.tileSize - s.tileOverlap) / align) * align <= 0)
    throw new UsageError(
      `--tile ${s.tileSize} --tile-overlap ${s.tileOverlap}: tiles must advance by at least the model's size multiple (${align} px)`,
    );
}

/** Output names from file stems, suffixed where two inputs share a stem. */
function uniqueStems(files: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return files.map((f) => {
    const stem = basename(f, extname(f)).replace(/[^\w.-]+/g, '_') || 'image';
    const n = seen.get(stem) ?? 0;
    seen.set(stem, n + 1);
    return n ? `${stem}_${n + 1}` : stem;
  });
}

function commonBase(files: readonly string[]): string {
  if (!files.length) return process.cwd();
  const parts = files.map((f) => resolve(f).split('/').slice(0, -1));
  const first = parts[0]!;
  let k = 0;
  while (k < first.length && parts.every((p) => p[k] === first[k])) k++;
  return first.slice(0, k).join('/') || '/';
}
