/**
 * `bmc export --int8 --calibration <folder>`: reads the calibration images,
 * prepares them exactly as `bmc detect` does (the model's pixel scale, tiling,
 * normalisation: the same `detectPixels` code, with a runner that records its
 * inputs), and hands them to @bmc/export's static quantiser.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { InputError } from '@bmc/core';
import { writeFileAtomic } from '@bmc/core/node';
import {
  type CalibrationInput,
  type CalibrationMethod,
  type QuantizeResult,
  quantizeOnnx,
} from '@bmc/export';
import { type BmcMetadata, readBmcMetadata } from '@bmc/export/metadata';
import { InvalidArgumentError } from 'commander';

export interface Int8Options {
  /** Folder of calibration images (searched recursively, like `bmc detect`'s folders). */
  calibration: string;
  method?: CalibrationMethod;
  /** At most this many images, spread evenly over the sorted list (default 100). */
  maxImages?: number;
  threads?: number;
  log?: (line: string) => void;
}

/** The default cap on calibration images: ranges settle after a few dozen fields. */
export const DEFAULT_CALIBRATION_IMAGES = 100;

/**
 * The calibration images in `folder` (at most `maxImages`, spread evenly over the sorted
 * list). Checked before the model is loaded: a missing or empty folder fails at once.
 */
export async function listCalibrationImages(
  folder: string,
  maxImages = DEFAULT_CALIBRATION_IMAGES,
): Promise<string[]> {
  const st = await stat(folder).catch((e: NodeJS.ErrnoException) => {
    throw new InputError(
      e.code === 'ENOENT'
        ? `calibration folder ${folder} does not exist`
        : `calibration folder ${folder}: cannot read it (${e.message})`,
      folder,
    );
  });
  if (!st.isDirectory()) throw new InputError(`calibration folder ${folder} is not a folder`, folder);
  const { expandInputs, IMAGE_EXTENSIONS } = await import('@bmc/infer');
  const all = await expandInputs([folder]).catch((e: Error) => {
    throw new InputError(
      `calibration folder ${folder} has no images (looked for ${IMAGE_EXTENSIONS.join(' ')}): ${e.message}`,
      folder,
    );
  });
  return evenlySpaced(all, maxImages);
}

/**
 * Every network input the calibration images give, decoded and prepared up front, so that an
 * unreadable image fails before the calibration runs (and before anything is written).
 */
export async function calibrationInputs(
  meta: BmcMetadata,
  files: readonly string[],
): Promise<CalibrationInput[]> {
  const { decodeToPixels } = await import('@bmc/infer');
  const { detectPixels, anchorsFor } = await import('@bmc/infer/pipeline');
  const inputs: CalibrationInput[] = [];
  const classes = meta.classNames.length;
  for (const file of files) {
    let pixels: Awaited<ReturnType<typeof decodeToPixels>>;
    try {
      pixels = await decodeToPixels(file);
    } catch (e) {
      // @bmc/data's DataError names the file itself; say once which file and what is wrong.
      const problem = (e as { problem?: string }).problem ?? (e as Error).message;
      throw new InputError(`calibration image ${file}: ${problem}`, file);
    }
    // The runner keeps the prepared input and answers "no cells" (logits far below any
    // threshold), so post-processing has nothing to do.
    await detectPixels(
      async (input, height, width) => {
        inputs.push({ data: input.slice(), dims: [1, 3, height, width] });
        const a = anchorsFor(meta, height, width).levelCounts.reduce((s, n) => s + n, 0);
        return {
          clsLogits: new Float32Array(a * classes).fill(-100),
          boxDeltas: new Float32Array(a * 4),
          ...(meta.outputs.iouLogits ? { iouLogits: new Float32Array(a).fill(-100) } : {}),
        };
      },
      meta,
      pixels,
    );
  }
  return inputs;
}

/** `n` items spread evenly over `list` (all of it when it is shorter). */
function evenlySpaced<T>(list: readonly T[], n: number): T[] {
  if (list.length <= n) return [...list];
  return Array.from({ length: n }, (_, i) => list[Math.floor((i * list.length) / n)]!);
}

/** Quantises a float bmc ONNX file with the images `files` (from `listCalibrationImages`). */
export async function quantizeWithImages(
  floatOnnx: Uint8Array,
  files: readonly string[],
  o: Int8Options,
): Promise<QuantizeResult> {
  const say = o.log ?? (() => {});
  const meta = readBmcMetadata(floatOnnx, 'model to quantise');
  if (meta.quantization) throw new InputError('the model is already quantised (its bmc.quantization is set)');
  const inputs = await calibrationInputs(meta, files);
  say(
    `calibration: ${files.length} images (${inputs.length} network inputs) from ${o.calibration}, method ${o.method ?? 'minmax'}`,
  );
  return quantizeOnnx(floatOnnx, inputs, {
    calibration: { images: files.length, source: basename(resolve(o.calibration)) },
    ...(o.method ? { method: o.method } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
  });
}

/** Commander parser for a positive integer option. */
export function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`expected a positive integer, got '${v}'`);
  return n;
}

/**
 * The `bmc export --int8` action: `source` is a run folder (its checkpoint is exported in
 * memory first) or a bmc .onnx file. Writes only when quantisation succeeded (atomic rename).
 */
export async function exportInt8(
  source: string,
  o: {
    int8?: boolean;
    out?: string;
    weights?: 'best' | 'last';
    calibration?: string;
    calibrationMethod?: CalibrationMethod;
    calibrationImages?: number;
  },
): Promise<void> {
  if (!o.int8) throw new InputError('--calibration needs --int8');
  if (!o.calibration)
    throw new InputError('--int8 needs --calibration <folder> (images like the ones the model will see)');
  const files = await listCalibrationImages(o.calibration, o.calibrationImages);
  let floatOnnx: Uint8Array;
  let out: string;
  let from: string;
  const isOnnx = source.toLowerCase().endsWith('.onnx');
  const st = await stat(source).catch(() => undefined);
  if (isOnnx && !st?.isFile()) throw new InputError(`${source}: no such ONNX file`, source);
  if (isOnnx) {
    floatOnnx = await readFile(source);
    out = o.out ?? source.replace(/\.onnx$/i, '-int8.onnx');
    from = source;
  } else {
    const { loadConfig } = await import('../config/load.js');
    const { setUpEngine } = await import('../train/trainer.js');
    const { loadRun, runOnnxBytes } = await import('./pipeline.js');
    await setUpEngine(loadConfig({ file: `${source}/config.yaml` }).run, () => {});
    const run = await loadRun(source, o.weights ?? 'best');
    floatOnnx = runOnnxBytes(run);
    out = o.out ?? `${run.paths.root}/model-int8.onnx`;
    from = run.weights;
  }
  const t0 = performance.now();
  const q = await quantizeWithImages(floatOnnx, files, {
    calibration: o.calibration,
    ...(o.calibrationMethod ? { method: o.calibrationMethod } : {}),
    log: (l) => console.log(l),
  });
  writeFileAtomic(out, q.bytes);
  const s = q.summary;
  console.log(
    `wrote ${out} (${(q.bytes.length / 2 ** 20).toFixed(2)} MB, float ${(floatOnnx.length / 2 ** 20).toFixed(2)} MB) from ${from}: ` +
      `${s.quantizedConvs} int8 convs${s.floatConvs ? ` (${s.floatConvs} with float output)` : ''}, ${s.quantizedAdds} int8 adds, ` +
      `${s.quantizedTensors} activation scales, in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
}
