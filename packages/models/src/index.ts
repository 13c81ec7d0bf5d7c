import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Pretrained bmc detectors shipped as files inside this package: each model is a folder
 * `models/<name>/` with `model.onnx` (for `bmc detect` / `bmc serve` / @bmc/infer), `checkpoint/`
 * (bmc checkpoint format from @bmc/export, for `bmc train --init <name>`) and `model.json` (what the
 * model is: the model card's facts in machine-readable form).
 */

/** The model `bmc detect` and `bmc serve` use when no `-m` is given. */
export const DEFAULT_MODEL = 'blood-smear';

/** One shipped model, as described by its `model.json`. */
export interface ModelInfo {
  name: string;
  /** One line: what it detects and on what images. */
  summary: string;
  /** Class names in label order (one class, `cell`, for the class-agnostic detectors). */
  classes: string[];
  /** Absolute path of the ONNX file. */
  onnx: string;
  /** Absolute path of the checkpoint folder. */
  checkpoint: string;
  /** Everything else `model.json` records (training data, command, metrics...). */
  [key: string]: unknown;
}

/**
 * Thrown for a model name this package does not ship; the message lists the names it has. `kind: 'input'`
 * makes the bmc command exit 2 with the message alone (@bmc/core's `errorKind`), without this package
 * depending on @bmc/core.
 */
export class UnknownModelError extends Error {
  override name = 'UnknownModelError';
  readonly kind = 'input' as const;
  constructor(readonly model: string) {
    super(`unknown model '${model}' (this @bmc/models ships: ${modelNames().join(', ') || 'none'})`);
  }
}

// dist/index.js (built) or src/index.ts (tests): the models folder is the package root's `models/`.
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'models');

/** The names of the models this package ships, sorted. */
export function modelNames(): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(root, d.name, 'model.json')))
    .map((d) => d.name)
    .sort();
}

function modelDir(name: string): string {
  // A name is a folder of this package, never a path: refuse separators and dot names.
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || !modelNames().includes(name)) throw new UnknownModelError(name);
  return join(root, name);
}

/** Absolute path of a shipped model's ONNX file (default: {@link DEFAULT_MODEL}). */
export function modelPath(name: string = DEFAULT_MODEL): string {
  return join(modelDir(name), 'model.onnx');
}

/** Absolute path of a shipped model's checkpoint folder, for fine-tuning (`bmc train --init`). */
export function checkpointDir(name: string = DEFAULT_MODEL): string {
  return join(modelDir(name), 'checkpoint');
}

/** A shipped model's description (its `model.json` plus absolute file paths). */
export function modelInfo(name: string = DEFAULT_MODEL): ModelInfo {
  const dir = modelDir(name);
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as Pick<
    ModelInfo,
    'summary' | 'classes'
  > &
    Record<string, unknown>;
  return { ...json, name, onnx: join(dir, 'model.onnx'), checkpoint: join(dir, 'checkpoint') };
}

/** Every model this package ships, by name. */
export function listModels(): ModelInfo[] {
  return modelNames().map((n) => modelInfo(n));
}
