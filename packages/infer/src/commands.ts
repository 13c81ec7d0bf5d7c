import { UsageError } from '@bmc/core';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { DefaultModelResolver } from './default-model.js';
import { MAX_RESIZE_LONG_SIDE } from './limits.js';

export type { DefaultModel, DefaultModelResolver } from './default-model.js';

export interface InferCommandOptions {
  /** The model used without `-m` (the `bmc` binary passes @bmc/models' default); without it `-m` is required. */
  defaultModel?: DefaultModelResolver;
}

const num =
  (min: number, max = Number.POSITIVE_INFINITY) =>
  (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected a number in [${min}, ${max}]`);
    return n;
  };
const int =
  (min: number, max = Number.POSITIVE_INFINITY) =>
  (v: string) => {
    const n = num(min, max)(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError('expected an integer');
    return n;
  };

/** `--resize`, shared by detect and serve: overrides the model's recorded pixel scale. */
const resizeOption = () =>
  new Option(
    '--resize <px>',
    `resize so the longer side is <px> before detection, at most ${MAX_RESIZE_LONG_SIDE} (0: source resolution; default: the model's recorded pixel scale)`,
  ).argParser(int(0, MAX_RESIZE_LONG_SIDE));

/** `--tile`, shared by detect and serve. */
const tileOption = () =>
  new Option(
    '--tile <px>',
    'tile images larger than this (0: never; default: the training crop, else 1024)',
  ).argParser(int(0));

/**
 * Adds `detect` and `serve` to a commander 14 program (the `bmc` binary of
 * apps/train calls this; `bmc-infer` is the standalone equivalent). The heavy
 * modules (onnxruntime-node, sharp, fastify) load only when a command runs, so
 * importing this from `@bmc/infer/commands` keeps `bmc --help` fast.
 */
export function registerInferCommands(program: Command, options: InferCommandOptions = {}): Command {
  const modelHelp = `bmc ONNX detector (from bmc export)${options.defaultModel ? '; default: the shipped blood-smear model (@bmc/models)' : ''}`;
  const model = async (m: string | undefined) => {
    const { resolveModel } = await import('./default-model.js');
    return resolveModel(m, options.defaultModel, (line) => process.stderr.write(`${line}\n`));
  };
  program
    .command('detect')
    .description('detect cells in images, folders or globs with an exported bmc ONNX model')
    .argument('<inputs...>', 'image files, folders (recursive) or globs')
    .option('-m, --model <file>', modelHelp)
    .option('-o, --out <dir>', 'output folder', 'detections')
    .option(
      '--score <t>',
      "score threshold for counts, annotated images, crops and results.json (default: counts at the model's operating point, results.json keeps every candidate for AP)",
      num(0, 1),
    )
    .option('--iou <t>', 'NMS IoU threshold (default: the model metadata)', num(0, 1))
    .option('--max-detections <n>', 'detections per image (per tile when tiled)', int(1))
    .addOption(resizeOption())
    .addOption(tileOption())
    .option('--tile-overlap <px>', 'overlap between tiles, above the largest cell (default 128)', int(0))
    .option('--crops', 'write one PNG per detected cell', false)
    .option('--crop-margin <f>', 'margin around each crop, fraction of the box', num(0, 2), 0.1)
    .option('--no-annotate', 'skip the annotated images')
    .option(
      '--classifier <file>',
      'cell-type classifier ONNX (bmc classify export): types and differential.csv',
    )
    .option(
      '--classifier-threshold <p>',
      'below this type probability a cell is "unclassified"',
      num(0, 1),
      0.5,
    )
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', int(1))
    .option(
      '--slide-downsample <f>',
      'slides (pyramidal TIFF/SVS, images above 64 MP): level-0 pixels per model pixel, picks the pyramid level',
      num(1),
    )
    .option('--no-tissue-mask', 'slides: run every tile, glass included')
    .option(
      '--deep-zoom',
      'slides: also write a Deep Zoom pyramid (slides/<name>.dz/slide.dzi, JPEG tiles, bare glass left out) for the deep-zoom viewer',
      false,
    )
    .option(
      '--queue <url>',
      'run the detections on bmc workers through Redis (redis://host:port): slides as tile jobs, images as one job each',
    )
    .option(
      '--tile-store <dir>',
      'with --queue: folder for the job results, at the same path for every worker (default: <out>/tiles)',
    )
    .addOption(new Option('--no-progress', 'no progress bar'))
    .action(async (inputs: string[], o) => {
      if (o.tile > 0 && o.tileOverlap !== undefined && o.tileOverlap >= o.tile)
        throw new UsageError(
          `--tile ${o.tile} --tile-overlap ${o.tileOverlap}: the overlap must be smaller than the tile`,
        );
      const { detectCommand } = await import('./detect-command.js');
      const { resolve } = await import('node:path');
      // --queue: Redis is checked before the model loads (a wrong URL is exit 2 at once).
      const remote = o.queue
        ? await (await import('./jobs/submit.js')).queueDetection({
            url: o.queue,
            store: resolve(o.tileStore ?? `${o.out}/tiles`),
          })
        : undefined;
      // With a queue the workers run the network: the submitter reads the model's metadata only.
      const modelPath = await model(o.model);
      const detector = remote
        ? await (await import('./jobs/model-meta.js')).loadModelMeta(modelPath)
        : modelPath;
      const res = await detectCommand({
        inputs,
        model: detector,
        out: o.out,
        scoreThreshold: o.score,
        iouThreshold: o.iou,
        maxDetections: o.maxDetections,
        resizeLongSide: o.resize,
        tileSize: o.tile,
        tileOverlap: o.tileOverlap,
        crops: o.crops,
        cropMargin: o.cropMargin,
        ...(o.classifier ? { classifier: o.classifier, classifierThreshold: o.classifierThreshold } : {}),
        annotate: o.annotate,
        threads: o.threads,
        progress: o.progress === false ? false : undefined,
        slideDownsample: o.slideDownsample,
        tissueMask: o.tissueMask,
        deepZoom: o.deepZoom,
        ...(remote ? { remote } : {}),
      }).finally(() => remote?.close());
      if (res.processed.length === 0) process.exitCode = 1;
    });

  program
    .command('serve')
    .description('HTTP detection service (POST /v1/detect) and the browser viewer')
    .option('-m, --model <file>', modelHelp)
    .option('--host <host>', 'address to bind (0.0.0.0 exposes the service to the network)', '127.0.0.1')
    .option('-p, --port <port>', 'port', int(0), 8080)
    .option('--concurrency <n>', 'detections running at once', int(1), 1)
    .option(
      '--max-queue <n>',
      'requests allowed to wait with their body read (upload or queue); more wait unread (--admission-wait)',
      int(0),
      32,
    )
    .option('--body-limit <mb>', 'largest accepted image file in MiB (more: 413)', num(0.001), 32)
    .option(
      '--max-pixels <mp>',
      'largest accepted image in megapixels, read from its header before decoding (more: 413)',
      num(0.000001),
      50,
    )
    .option(
      '--timeout <ms>',
      'per-request deadline, queue wait + detection (past it: 503, work stopped)',
      int(1),
      30_000,
    )
    .option(
      '--max-connections <n>',
      'open connections; over it the longest idle one is closed, or the new one if all are busy',
      int(1),
      256,
    )
    .option(
      '--headers-timeout <ms>',
      'time to send the request headers (slower: 408, closed)',
      int(1),
      10_000,
    )
    .option(
      '--request-timeout <ms>',
      'time to send a whole request, headers and body (slower: 408, closed)',
      int(1),
      60_000,
    )
    .option('--keep-alive-timeout <ms>', 'idle keep-alive connections are closed after this', int(1), 5_000)
    .option(
      '--admission-wait <ms>',
      'a request that finds the queue full waits this long, unread, for a place (then 503 + Retry-After; 0: at once)',
      int(0),
      10_000,
    )
    .option('--threads <n>', 'onnxruntime threads per detection (default: cores / concurrency)', int(1))
    .addOption(resizeOption())
    .addOption(tileOption())
    .option('--tile-overlap <px>', 'overlap between tiles, above the largest cell (default 128)', int(0))
    .option(
      '--classifier <file>',
      'cell-type classifier ONNX (bmc classify export): each cell gets a type, the answer a differential count',
    )
    .option(
      '--classifier-threshold <p>',
      'below this probability a cell is counted as unclassified',
      num(0, 1),
      0.5,
    )
    .option('--no-viewer', 'do not serve the browser viewer at /')
    .option(
      '--queue <url>',
      'slide jobs (POST /v1/jobs) detected by bmc workers through Redis (redis://host:port)',
    )
    .option('--jobs-dir <dir>', 'with --queue: job outputs, uploads and the tile store', 'bmc-jobs')
    .option(
      '--slide-root <dir>',
      'with --queue: POST /v1/jobs {"path"} reads slides inside this folder only',
      '.',
    )
    .option('--max-slide-mb <mb>', 'with --queue: largest uploaded slide in MiB', num(1), 8192)
    .option(
      '--deep-zoom',
      "with --queue: write each slide job's Deep Zoom pyramid, opened by the deep-zoom viewer (/slide.html)",
      false,
    )
    .action(async (o) => {
      const { createServer } = await import('./server.js');
      const server = await createServer({
        model: await model(o.model),
        host: o.host,
        port: o.port,
        concurrency: o.concurrency,
        maxQueue: o.maxQueue,
        bodyLimit: Math.round(o.bodyLimit * 1024 * 1024),
        maxPixels: Math.round(o.maxPixels * 1e6),
        timeoutMs: o.timeout,
        maxConnections: o.maxConnections,
        headersTimeoutMs: o.headersTimeout,
        requestTimeoutMs: o.requestTimeout,
        keepAliveTimeoutMs: o.keepAliveTimeout,
        admissionWaitMs: o.admissionWait,
        threads: o.threads,
        detect: {
          ...(o.tile !== undefined ? { tileSize: o.tile } : {}),
          ...(o.tileOverlap !== undefined ? { tileOverlap: o.tileOverlap } : {}),
          ...(o.resize !== undefined ? { resizeLongSide: o.resize } : {}),
        },
        ...(o.classifier ? { classifier: o.classifier, classifierThreshold: o.classifierThreshold } : {}),
        ...(o.viewer === false ? { viewer: false } : {}),
        ...(o.queue
          ? {
              jobs: {
                url: o.queue,
                dir: o.jobsDir,
                slideRoot: o.slideRoot,
                maxUploadBytes: Math.round(o.maxSlideMb * 1024 * 1024),
                deepZoom: o.deepZoom,
              },
            }
          : {}),
      });
      await server.listen();
      process.stderr.write(`${server.pixelScale.description}\n`);
      const stop = () => void server.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  program
    .command('worker')
    .description(
      'run detection jobs from Redis (bmc detect --queue, bmc serve --queue); start any number, on any machine',
    )
    .requiredOption('--queue <url>', 'Redis of the run (redis://host:port)')
    .option('-m, --model <file>', `${modelHelp}; a worker takes the jobs of its own model only`)
    .option('--concurrency <n>', 'jobs at once (onnxruntime already uses every core for one)', int(1), 1)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', int(1))
    .option(
      '--lock-duration <ms>',
      'a job is given to another worker this long after its worker stops answering (must exceed the slowest tile)',
      int(1000),
      30_000,
    )
    .action(async (o) => {
      const { startWorker } = await import('./jobs/worker.js');
      // The URL first: a wrong one is exit 2 before the model is looked for.
      await (await import('./jobs/connection.js')).checkRedis(o.queue);
      const worker = await startWorker({
        url: o.queue,
        model: await model(o.model),
        concurrency: o.concurrency,
        threads: o.threads,
        lockDurationMs: o.lockDuration,
      });
      // SIGINT/SIGTERM: the jobs in hand finish (their results are written), then the worker leaves.
      const stop = () =>
        void worker.close().then(() => {
          const { ran, reused, failed } = worker.stats;
          process.stderr.write(
            `worker: stopped (${ran} job(s) run, ${reused} found done, ${failed} failed)\n`,
          );
          process.exit(0);
        });
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  return program;
}
