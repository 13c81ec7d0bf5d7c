/**
 * Synchronous access to onnxruntime-node. The package's public
 * `InferenceSession.run` is async only because it wraps the N-API binding's
 * synchronous `run` in `setImmediate` (dist/backend.js); a tfjs kernel must
 * return synchronously, so we call the binding (dist/binding.js) directly.
 * That is an internal API: the version is pinned exactly and
 * `checkBindingShape` fails loudly when an upgrade changes it.
 */
import { createRequire } from 'node:module';

/** The onnxruntime-node version whose internal binding this module was written against. */
export const ORT_VERSION = '1.30.0';

/** What the binding's `run` accepts and returns per value (an onnxruntime-common Tensor). */
export interface OrtTensorLike {
  readonly type: string;
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

export interface BindingSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  readonly inputMetadata: { name: string; shape: number[]; type: number }[];
  readonly outputMetadata: { name: string; shape: number[]; type: number }[];
  /** Runs synchronously; an output given a tensor in `fetches` is written into that tensor's data. */
  run(
    feeds: Record<string, OrtTensorLike>,
    fetches: Record<string, OrtTensorLike | null>,
    options: object,
  ): Record<string, OrtTensorLike>;
  dispose(): void;
}

export interface OrtNative {
  version: string;
  /** Absolute path of the package directory the binding came from. */
  packageDir: string;
  newSession(): BindingSession;
  /** onnxruntime-common's Tensor constructor (what the binding expects in feeds). */
  Tensor: new (
    type: 'float32',
    data: Float32Array,
    dims: readonly number[],
  ) => OrtTensorLike;
  listSupportedBackends(): { name: string; bundled: boolean }[];
}

interface BindingModule {
  binding: {
    InferenceSession: new () => BindingSession;
    listSupportedBackends: () => { name: string; bundled: boolean }[];
    initOrtOnce: unknown;
  };
  initOrt: () => void;
}

/**
 * Throws with a precise message when the binding module does not have the
 * shape this package relies on (a version bump that moved or renamed it).
 */
export function checkBindingShape(mod: unknown): asserts mod is BindingModule {
  const m = mod as Partial<BindingModule> | null;
  const problems: string[] = [];
  if (typeof m?.initOrt !== 'function') problems.push('initOrt() missing');
  const b = m?.binding;
  if (typeof b?.InferenceSession !== 'function') problems.push('binding.InferenceSession missing');
  else {
    const proto = b.InferenceSession.prototype as Record<string, unknown>;
    for (const fn of ['loadModel', 'run', 'dispose']) {
      if (!(fn in proto)) problems.push(`binding.InferenceSession.prototype.${fn} missing`);
    }
  }
  if (typeof b?.listSupportedBackends !== 'function') problems.push('binding.listSupportedBackends missing');
  if (problems.length > 0) {
    throw new Error(
      `onnxruntime-node internal binding changed (${problems.join('; ')}); @bmc/engine was written against ${ORT_VERSION}`,
    );
  }
}

let cached: OrtNative | undefined;
let cachedError: Error | undefined;

/**
 * Loads onnxruntime-node's native binding once. Throws (and keeps throwing the
 * same error) when the package, its binary for this platform or the expected
 * internal API is missing.
 */
export function loadOrtNative(): OrtNative {
  if (cached) return cached;
  if (cachedError) throw cachedError;
  try {
    const require = createRequire(import.meta.url);
    const pkgJson = require.resolve('onnxruntime-node/package.json');
    const version = (require(pkgJson) as { version: string }).version;
    if (version !== ORT_VERSION) {
      throw new Error(`onnxruntime-node ${version} found, @bmc/engine needs exactly ${ORT_VERSION}`);
    }
    const mod: unknown = require('onnxruntime-node/dist/binding');
    checkBindingShape(mod);
    const { Tensor } = require('onnxruntime-node') as { Tensor: OrtNative['Tensor'] };
    mod.initOrt();
    const { binding } = mod;
    cached = {
      version,
      packageDir: pkgJson.slice(0, -'/package.json'.length),
      newSession: () => new binding.InferenceSession(),
      Tensor,
      listSupportedBackends: () => binding.listSupportedBackends(),
    };
    return cached;
  } catch (e) {
    cachedError = e instanceof Error ? e : new Error(String(e));
    throw cachedError;
  }
}
