import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { type BmcMetadata, readBmcMetadata } from '@bmc/export/metadata';
import * as ort from 'onnxruntime-node';
import { detectPixels } from './pipeline/detect.js';
import { checkGraphNames, ModelLoadError, ortRunner } from './pipeline/ort-runner.js';
import type { DetectOptions, DetectResult, NetworkRunner, RawPixels } from './pipeline/types.js';

export { ModelLoadError };

export interface LoadModelOptions {
  /** onnxruntime intra-op threads. Default: all cores. */
  threads?: number;
  /**
   * Let onnxruntime's intra-op threads spin (busy-wait) between parallel sections. Default
   * false: the spinning threads take the cores from the JavaScript post-processing that follows
   * each run and from other requests; on the 2-core machine `bmc detect` of the shipped model ran
   * 2.4x (float) and 2.5x (INT8) faster without it (@bmc/infer's bench/measured/infer.json).
   */
  spinning?: boolean;
}

/** A loaded detector: the ONNX session plus the settings its metadata carries. */
export interface Detector {
  readonly path: string;
  readonly meta: BmcMetadata;
  readonly sizeBytes: number;
  readonly run: NetworkRunner;
  detect(image: RawPixels, options?: DetectOptions): Promise<DetectResult>;
  dispose(): Promise<void>;
}

/** A model file's bytes and bmc metadata; either failing is a `ModelLoadError` naming the file. */
export async function readModelFile(path: string): Promise<{ bytes: Uint8Array; meta: BmcMetadata }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ModelLoadError(`${path}: cannot read model file (${(e as Error).message})`);
  }
  try {
    return { bytes, meta: readBmcMetadata(bytes, path) };
  } catch (e) {
    throw new ModelLoadError((e as Error).message);
  }
}

/**
 * Loads a bmc ONNX detector once: reads its metadata (all inference settings
 * come from the file) and creates an onnxruntime-node session with full graph
 * optimisation. Checks that the graph has the input and outputs the metadata names.
 */
export async function loadDetector(path: string, options: LoadModelOptions = {}): Promise<Detector> {
  const { bytes, meta } = await readModelFile(path);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: options.threads ?? availableParallelism(),
      interOpNumThreads: 1,
      extra: { session: { intra_op: { allow_spinning: options.spinning ? '1' : '0' } } },
    });
  } catch (e) {
    throw new ModelLoadError(`${path}: onnxruntime cannot load the model (${(e as Error).message})`);
  }
  checkGraphNames(path, meta, session.inputNames, session.outputNames);
  const run = ortRunner(session, meta, ort.Tensor);
  return {
    path,
    meta,
    sizeBytes: bytes.length,
    run,
    detect: (image, opts) => detectPixels(run, meta, image, opts),
    dispose: () => session.release(),
  };
}
