/**
 * Picks the fastest TensorFlow.js backend that actually loads here. The native
 * backends (`tfjs-node-gpu`, `tfjs-node`) download libtensorflow at install
 * time and are often absent or broken (offline machines, no CUDA 11.2), so each
 * candidate is tried and its failure recorded in one line, never thrown.
 */
import * as tf from '@tensorflow/tfjs-core';

export type BackendName = 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

interface Candidate {
  /** The package whose import registers the backend. */
  module: string;
  /** The name tfjs registers it under. */
  registered: string;
}

const CANDIDATES: Record<BackendName, Candidate> = {
  'tensorflow-gpu': { module: '@tensorflow/tfjs-node-gpu', registered: 'tensorflow' },
  tensorflow: { module: '@tensorflow/tfjs-node', registered: 'tensorflow' },
  wasm: { module: '@tensorflow/tfjs-backend-wasm', registered: 'wasm' },
  cpu: { module: '@tensorflow/tfjs-backend-cpu', registered: 'cpu' },
};

export interface BackendAttempt {
  name: BackendName;
  module: string;
  ok: boolean;
  /** Why it was skipped, in one line (the import or initialisation error). */
  reason?: string;
}

export interface BackendChoice {
  /** The backend now active in tfjs. */
  name: BackendName;
  /** Every candidate tried, best first, including the chosen one. */
  attempts: BackendAttempt[];
  /** How the order was decided: the option, `BMC_BACKEND`, or the default. */
  source: 'option' | 'env' | 'default';
}

export interface InitBackendOptions {
  /** One backend, or an ordered list to try. Overrides `BMC_BACKEND`. */
  preference?: BackendName | readonly BackendName[];
  /** Injected module loader (tests); defaults to dynamic `import()`. */
  importModule?: (specifier: string) => Promise<unknown>;
}

/** Parses `BMC_BACKEND` ("wasm" or "wasm,cpu"); throws on unknown names so a typo is not silently ignored. */
export function parseBackendList(value: string): BackendName[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names) {
    if (!(BACKEND_ORDER as readonly string[]).includes(n)) {
      throw new Error(`BMC_BACKEND: unknown backend '${n}' (expected one of ${BACKEND_ORDER.join(', ')})`);
    }
  }
  return names as BackendName[];
}

/** Whether this is Node.js (the native backends exist only there). */
function isNode(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof proc?.versions?.node === 'string';
}

/**
 * `import()` of a specifier that bundlers must leave alone: Node's built-ins here, the backend
 * packages in `initBackend`. The specifier is not a literal, so a browser bundle (Vite, esbuild,
 * webpack) neither resolves nor stubs `node:fs` and friends; this module stays browser-safe.
 */
function importAtRunTime(specifier: string): Promise<unknown> {
  return import(/* webpackIgnore: true */ /* @vite-ignore */ specifier);
}

/**
 * For the native backends: the reason their import would fail, found without
 * importing. A failed `tfjs-node` import has already registered its kernels,
 * so trying the next native package after it floods the console with
 * "kernel already registered" warnings. The binding lives where the package's
 * `binary.module_path` says (`lib/napi-v<N>/tfjs_binding.node`); its install
 * script downloads it, which fails offline.
 */
async function nativeBindingProblem(module: string): Promise<string | undefined> {
  if (!isNode()) return `${module} needs Node.js`;
  try {
    const [{ createRequire }, { existsSync, readFileSync }, { dirname, join }] = (await Promise.all([
      importAtRunTime('node:module'),
      importAtRunTime('node:fs'),
      importAtRunTime('node:path'),
    ])) as [typeof import('node:module'), typeof import('node:fs'), typeof import('node:path')];
    const pkgFile = createRequire(import.meta.url).resolve(`${module}/package.json`);
    const binary = JSON.parse(readFileSync(pkgFile, 'utf8')).binary as
      | { module_name: string; module_path: string; napi_versions: number[] }
      | undefined;
    if (!binary) return undefined;
    const found = binary.napi_versions.some((v) =>
      existsSync(
        join(
          dirname(pkgFile),
          binary.module_path.replace('{napi_build_version}', String(v)),
          `${binary.module_name}.node`,
        ),
      ),
    );
    return found
      ? undefined
      : `${module} is installed but its native binding was never downloaded (${binary.module_name}.node missing; its install script needs internet)`;
  } catch {
    // Not resolvable from here: let the import itself report why.
    return undefined;
  }
}

function envBackend(): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.BMC_BACKEND;
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (
    text
      .split('\n')
      .find((l) => l.trim())
      ?.trim() ?? 'unknown error'
  );
}

/**
 * Tries the backends in order (default: tensorflow-gpu, tensorflow, wasm, cpu),
 * activates the first that imports and initialises, and reports every attempt.
 * Throws only when none works, listing each reason.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendChoice> {
  const load = options.importModule ?? importAtRunTime;
  let order: readonly BackendName[];
  let source: BackendChoice['source'];
  if (options.preference !== undefined) {
    order = typeof options.preference === 'string' ? [options.preference] : options.preference;
    source = 'option';
  } else if (envBackend()) {
    order = parseBackendList(envBackend()!);
    source = 'env';
  } else {
    order = BACKEND_ORDER;
    source = 'default';
  }
  const attempts: BackendAttempt[] = [];
  for (const name of order) {
    const candidate = CANDIDATES[name];
    try {
      if (candidate.registered === 'tensorflow' && !options.importModule) {
        const problem = await nativeBindingProblem(candidate.module);
        if (problem) throw new Error(problem);
      }
      await load(candidate.module);
      if (!tf.findBackendFactory(candidate.registered)) {
        throw new Error(`importing ${candidate.module} registered no '${candidate.registered}' backend`);
      }
      if (!(await tf.setBackend(candidate.registered))) {
        throw new Error(`tf.setBackend('${candidate.registered}') failed to initialise`);
      }
      await tf.ready();
      attempts.push({ name, module: candidate.module, ok: true });
      return { name, attempts, source };
    } catch (err) {
      attempts.push({ name, module: candidate.module, ok: false, reason: oneLine(err) });
    }
  }
  const why = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
  throw new Error(`no TensorFlow.js backend could be initialised (${why})`);
}

/** A human-readable account of a choice, for `bmc doctor` and training logs. */
export function describeBackend(choice: BackendChoice): string {
  const lines = [`backend: ${choice.name} (order from ${choice.source})`];
  for (const a of choice.attempts) {
    lines.push(a.ok ? `  ${a.name}: ok (${a.module})` : `  ${a.name}: skipped, ${a.reason}`);
  }
  return lines.join('\n');
}
