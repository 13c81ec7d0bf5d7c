/**
 * Training checkpoints: model topology + weights, optimizer slots and training
 * state in one directory, written atomically (temporary directory, fsync,
 * rename) and indexed by a manifest of sizes and SHA-256 checksums that is
 * verified in full before anything is parsed or any tensor is created.
 *
 * Layout:
 *   manifest.json    {format, createdAt, bmcVersion, files: [{path, bytes, sha256}]}
 *   model.json       {format, modelTopology (tfjs), weights: [{name, shape, dtype, offset}]}
 *   weights.bin      little-endian float32 weights, in that order
 *   optimizer.json   {config, slots: [...]} + optimizer.bin (when an optimizer state is saved)
 *   state.json       step, epoch, lr schedule position, RNG state, config, ...
 */

import { writeDirAtomic, writeFileSynced } from '@bmc/core/node';
import * as tf from '@tensorflow/tfjs';
import pkg from '../../package.json';
import {
  CHECKPOINT_FORMAT,
  CheckpointError,
  type CheckpointManifest,
  MANIFEST_FILE,
  manifestEntry,
  readManifest,
  readVerifiedFiles,
} from './manifest.js';
import { type BundleDType, decodeBundle, encodeBundle, type NamedArray } from './tensor-bundle.js';

const MODEL_FORMAT = 'bmc-checkpoint-model/1';

/** Where training stands. Everything must be JSON-serialisable. */
export interface TrainingState {
  /** Optimizer steps taken. */
  step: number;
  /** Completed epochs. */
  epoch: number;
  /** Learning-rate schedule position (e.g. `{ iteration, lr, milestones }`). */
  lrSchedule?: unknown;
  /** Random generator state, so a resumed run draws the same batches. */
  rng?: unknown;
  /** The training configuration the run was started with. */
  config?: unknown;
  [key: string]: unknown;
}

/** Optimizer slots (momentum buffers, ...) by name, plus the optimizer's settings. */
export interface OptimizerState {
  slots: Record<string, tf.Tensor>;
  config?: unknown;
}

export interface CheckpointContents {
  model: tf.LayersModel;
  state?: TrainingState;
  optimizer?: OptimizerState;
}

export interface LoadedCheckpoint {
  model: tf.LayersModel;
  state?: TrainingState;
  /** Fresh tensors owned by the caller (dispose them, or hand them to the optimizer). */
  optimizer?: OptimizerState;
  manifest: CheckpointManifest;
}

interface ModelFile {
  format: typeof MODEL_FORMAT;
  modelTopology: unknown;
  weights: unknown;
}

async function modelArtifacts(model: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return artifacts!;
}

function concatBuffers(data: ArrayBuffer | ArrayBuffer[] | undefined): Uint8Array {
  const parts = data === undefined ? [] : Array.isArray(data) ? data : [data];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p), off);
    off += p.byteLength;
  }
  return out;
}

function toJson(value: unknown, what: string): string {
  try {
    return `${JSON.stringify(value, null, 2)}\n`;
  } catch (e) {
    throw new Error(`saveCheckpoint: ${what} is not JSON-serialisable (${(e as Error).message})`);
  }
}

/**
 * Saves a checkpoint to `dir` (replacing an existing one only once the new one is
 * complete on disk). Returns the manifest written.
 */
export async function saveCheckpoint(dir: string, contents: CheckpointContents): Promise<CheckpointManifest> {
  const artifacts = await modelArtifacts(contents.model);
  const weightBlob = concatBuffers(artifacts.weightData as ArrayBuffer | ArrayBuffer[] | undefined);
  const specs = artifacts.weightSpecs ?? [];
  // Re-index through the bundle codec so that offsets are explicit and checked on load.
  let offset = 0;
  const weightIndex = specs.map((s) => {
    if (s.dtype !== 'float32' && s.dtype !== 'int32') {
      throw new Error(
        `saveCheckpoint: weight '${s.name}' has dtype ${s.dtype}; only float32/int32 are stored`,
      );
    }
    const entry = { name: s.name, shape: [...s.shape], dtype: s.dtype as BundleDType, offset };
    offset += s.shape.reduce((a, b) => a * b, 1) * 4;
    return entry;
  });
  if (offset !== weightBlob.byteLength) {
    throw new Error(
      `saveCheckpoint: tfjs returned ${weightBlob.byteLength} weight bytes for specs describing ${offset}`,
    );
  }

  const files: Array<[string, Uint8Array | string]> = [
    [
      'model.json',
      toJson(
        {
          format: MODEL_FORMAT,
          modelTopology: artifacts.modelTopology,
          weights: weightIndex,
        } satisfies ModelFile,
        'model',
      ),
    ],
    ['weights.bin', weightBlob],
  ];
  if (contents.optimizer) {
    const arrays: NamedArray[] = [];
    for (const [name, t] of Object.entries(contents.optimizer.slots)) {
      if (t.dtype !== 'float32' && t.dtype !== 'int32') {
        throw new Error(`saveCheckpoint: optimizer slot '${name}' has dtype ${t.dtype}`);
      }
      const data = (await t.data()) as Float32Array | Int32Array;
      arrays.push({ name, shape: [...t.shape], dtype: t.dtype, data });
    }
    const { specs: slotSpecs, blob } = encodeBundle(arrays);
    files.push([
      'optimizer.json',
      toJson({ config: contents.optimizer.config ?? null, slots: slotSpecs }, 'optimizer config'),
    ]);
    files.push(['optimizer.bin', blob]);
  }
  if (contents.state) files.push(['state.json', toJson(contents.state, 'training state')]);

  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    createdAt: new Date().toISOString(),
    bmcVersion: pkg.version,
    files: [],
  };
  await writeDirAtomic(dir, (tmp) => {
    for (const [path, data] of files) {
      const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
      writeFileSynced(`${tmp}/${path}`, bytes);
      manifest.files.push(manifestEntry(path, bytes));
    }
    // Written last: a directory with a manifest is a complete checkpoint.
    writeFileSynced(`${tmp}/${MANIFEST_FILE}`, toJson(manifest, 'manifest'));
  });
  return manifest;
}

/** Checks that every file in the checkpoint has its recorded size and checksum. */
export function verifyCheckpoint(dir: string): CheckpointManifest {
  const manifest = readManifest(dir);
  readVerifiedFiles(dir, manifest);
  return manifest;
}

interface ParsedCheckpoint {
  manifest: CheckpointManifest;
  topology: unknown;
  weights: NamedArray[];
  state?: TrainingState;
  optimizer?: { config: unknown; slots: NamedArray[] };
}

function parseJson(bytes: Uint8Array | undefined, dir: string, path: string): unknown {
  if (!bytes) throw new CheckpointError(`checkpoint ${dir}: ${path} is not listed in ${MANIFEST_FILE}`);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new CheckpointError(`checkpoint ${dir}: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

/** Verifies and decodes everything into plain arrays; no tensor exists yet. */
function parseCheckpoint(dir: string): ParsedCheckpoint {
  const manifest = readManifest(dir);
  const files = readVerifiedFiles(dir, manifest);
  const model = parseJson(files.get('model.json'), dir, 'model.json') as ModelFile;
  if (model?.format !== MODEL_FORMAT) {
    throw new CheckpointError(
      `checkpoint ${dir}: model.json format is ${JSON.stringify(model?.format)}, expected '${MODEL_FORMAT}'`,
    );
  }
  const blob = files.get('weights.bin');
  if (!blob) throw new CheckpointError(`checkpoint ${dir}: weights.bin is not listed in ${MANIFEST_FILE}`);
  const weights = decodeBundle(model.weights, blob, `checkpoint ${dir}: weights.bin`);
  const parsed: ParsedCheckpoint = { manifest, topology: model.modelTopology, weights };
  if (files.has('state.json')) {
    const state = parseJson(files.get('state.json'), dir, 'state.json') as TrainingState;
    if (!Number.isInteger(state?.step) || !Number.isInteger(state?.epoch)) {
      throw new CheckpointError(`checkpoint ${dir}: state.json needs integer 'step' and 'epoch'`);
    }
    parsed.state = state;
  }
  if (files.has('optimizer.json')) {
    const opt = parseJson(files.get('optimizer.json'), dir, 'optimizer.json') as {
      config: unknown;
      slots: unknown;
    };
    const optBlob = files.get('optimizer.bin');
    if (!optBlob)
      throw new CheckpointError(`checkpoint ${dir}: optimizer.bin is not listed in ${MANIFEST_FILE}`);
    parsed.optimizer = {
      config: opt.config,
      slots: decodeBundle(opt.slots, optBlob, `checkpoint ${dir}: optimizer.bin`),
    };
  }
  return parsed;
}

function optimizerTensors(p: ParsedCheckpoint): OptimizerState | undefined {
  if (!p.optimizer) return undefined;
  const slots = Object.fromEntries(
    p.optimizer.slots.map((a) => [a.name, tf.tensor(a.data, a.shape, a.dtype)]),
  );
  return { slots, ...(p.optimizer.config != null ? { config: p.optimizer.config } : {}) };
}

/**
 * Loads a checkpoint: verifies sizes and checksums of every file, checks that
 * the weight index covers weights.bin exactly, then rebuilds the model (custom
 * layer classes must be registered, e.g. by importing their package).
 */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const p = parseCheckpoint(dir);
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: p.topology as tf.io.ModelArtifacts['modelTopology'],
        weightSpecs: p.weights.map(({ name, shape, dtype }) => ({ name, shape, dtype })),
        weightData: concatBuffers(p.weights.map((w) => w.data.slice().buffer as ArrayBuffer))
          .buffer as ArrayBuffer,
      }),
    );
  } catch (e) {
    throw new CheckpointError(
      `checkpoint ${dir}: cannot rebuild the model from model.json (${(e as Error).message})`,
    );
  }
  const optimizer = optimizerTensors(p);
  return {
    model,
    manifest: p.manifest,
    ...(p.state ? { state: p.state } : {}),
    ...(optimizer ? { optimizer } : {}),
  };
}

/**
 * Restores a checkpoint's weights into an existing model (same layer names).
 * Every weight is matched by name and shape before any is assigned: a mismatch
 * is an error and leaves the model untouched.
 */
export async function restoreCheckpoint(
  dir: string,
  model: tf.LayersModel,
): Promise<Omit<LoadedCheckpoint, 'model'>> {
  const p = parseCheckpoint(dir);
  const byName = new Map(p.weights.map((w) => [w.name, w]));
  const problems: string[] = [];
  const values = model.weights.map((w) => {
    const name = w.originalName;
    const saved = byName.get(name);
    if (!saved) problems.push(`'${name}' is missing`);
    else if (saved.shape.join('x') !== w.shape.join('x')) {
      problems.push(`'${name}' has shape [${saved.shape}] in the checkpoint, [${w.shape}] in the model`);
    }
    byName.delete(name);
    return saved;
  });
  for (const extra of byName.keys()) problems.push(`'${extra}' is not a weight of the model`);
  if (problems.length > 0) {
    throw new CheckpointError(
      `checkpoint ${dir}: weights do not fit model '${model.name}': ${problems.slice(0, 8).join('; ')}` +
        (problems.length > 8 ? `; and ${problems.length - 8} more` : ''),
    );
  }
  const tensors = values.map((v) => tf.tensor(v!.data, v!.shape, v!.dtype));
  try {
    model.setWeights(tensors);
  } finally {
    tf.dispose(tensors);
  }
  const optimizer = optimizerTensors(p);
  return {
    manifest: p.manifest,
    ...(p.state ? { state: p.state } : {}),
    ...(optimizer ? { optimizer } : {}),
  };
}
