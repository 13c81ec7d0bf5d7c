/**
 * Installs the training engine's convolution kernels and reports which path is
 * active: onnxruntime-node (native, multi-threaded) when it loads, else the
 * pure-wasm Conv2DBackpropFilter that makes wasm trainable at all.
 */
import { availableParallelism } from 'node:os';
import {
  Conv2D,
  Conv2DBackpropFilter,
  getKernel,
  type KernelConfig,
  Slice,
  Transpose,
} from '@tensorflow/tfjs-core';
import type { LayoutOption } from './conv-graphs.js';
import { nchwcBlockSize } from './nchwc-probe.js';
import { loadOrtNative } from './ort-binding.js';
import { type KernelCounters, type LayoutChoice, makeOrtKernels, swapKernels } from './ort-kernels.js';
import { type GraphOptimizationLevel, SessionCache, type SessionStats } from './session-cache.js';
import type { EngineBackendName } from './tensor-io.js';
import { makeWasmFilterGrad } from './wasm-filter-grad.js';

export type EnginePath = 'onnxruntime' | 'wasm-fallback';

export interface RegisterOrtKernelsOptions {
  /** The tfjs backend whose kernels are replaced. */
  backend: EngineBackendName;
  /** onnxruntime intra-op threads per kernel call; default: all cores (`os.availableParallelism()`). */
  threads?: number;
  /** Graph form per kernel, or one form for all (see README: measured). Default {@link DEFAULT_LAYOUT}. */
  layout?: LayoutOption | Partial<LayoutChoice>;
  /** onnxruntime graph optimisation level; default 'all'. */
  graphOptimizationLevel?: GraphOptimizationLevel;
  /** Keep onnxruntime's per-session memory arena (faster allocation, memory never returned). Default false. */
  memoryArena?: boolean;
  /** Most cached sessions (one per kernel, shape and attributes), least recently used released first. Default 512. */
  maxSessions?: number;
  /**
   * Let 'auto' (and an explicit 'nchwc') use MLAS's blocked-channel direct convolution where this
   * CPU has it (AVX2 / AVX-512); false keeps the im2col / GEMM forms only. Default true.
   */
  nchwc?: boolean;
}

/** Per-call choice from the geometry (conv-graphs.ts `chooseLayout`, measured in bench/). */
export const DEFAULT_LAYOUT: LayoutChoice = {
  forward: 'auto',
  backpropInput: 'auto',
  backpropFilter: 'auto',
};

export interface EngineHandle {
  readonly backend: EngineBackendName;
  readonly path: EnginePath;
  /** Kernel names this registration replaced or added. */
  readonly kernels: readonly string[];
  /** Session cache statistics (onnxruntime path only). */
  stats(): (SessionStats & KernelCounters) | undefined;
  /** Restores the kernels that were registered before and releases sessions. */
  unregister(): void;
}

export interface EngineDescription {
  onnxruntime: { available: boolean; version?: string; packageDir?: string; reason?: string };
  /** Active registrations, one per tfjs backend. */
  active: {
    backend: EngineBackendName;
    path: EnginePath;
    kernels: string[];
    threads?: number;
    layout?: LayoutChoice;
    graphOptimizationLevel?: GraphOptimizationLevel;
    /** MLAS's NCHWc block size in use (1: the 'nchwc' form is off or unavailable). */
    nchwcBlock?: number;
    stats?: SessionStats & KernelCounters;
  }[];
  /** One line for `bmc doctor`. */
  summary: string;
}

interface Active {
  handle: EngineHandle;
  threads?: number;
  layout?: LayoutChoice;
  graphOptimizationLevel?: GraphOptimizationLevel;
  nchwcBlock?: number;
}

const active = new Map<EngineBackendName, Active>();

function resolveLayout(l: RegisterOrtKernelsOptions['layout']): LayoutChoice {
  if (typeof l === 'string') return { forward: l, backpropInput: l, backpropFilter: l };
  return { ...DEFAULT_LAYOUT, ...(l ?? {}) };
}

function checkBackend(name: string): asserts name is EngineBackendName {
  if (name !== 'wasm' && name !== 'cpu') {
    throw new Error(`@bmc/engine: backend must be 'wasm' or 'cpu', got '${name}'`);
  }
}

/** Kernel functions this package created: never a delegation target (that would recurse). */
const ourKernelFuncs = new WeakSet<object>();
/** The backend's own kernels, remembered the first time they are seen unpatched. */
const originalKernels = new Map<string, KernelConfig>();

function markOurs(configs: readonly KernelConfig[]): void {
  for (const c of configs) ourKernelFuncs.add(c.kernelFunc);
}

/** The kernels a backend had before any of ours, so delegation never reaches our own. */
function previousKernels(backend: EngineBackendName, names: readonly string[]) {
  const prev: Partial<Record<string, KernelConfig>> = {};
  for (const n of names) {
    const key = `${backend}|${n}`;
    const k = getKernel(n, backend);
    if (k && !ourKernelFuncs.has(k.kernelFunc)) originalKernels.set(key, k);
    const original = originalKernels.get(key);
    if (original) prev[n] = original;
  }
  return prev;
}

/**
 * Registers Conv2D, FusedConv2D, Conv2DBackpropInput and Conv2DBackpropFilter
 * for `backend`, each running as a cached one-node onnxruntime session called
 * synchronously. Throws when onnxruntime-node cannot be loaded (see
 * {@link installEngineKernels} for the variant that falls back).
 * Replaces an earlier registration for the same backend.
 */
export function registerOrtKernels(options: RegisterOrtKernelsOptions): EngineHandle {
  const set = createOrtKernels(options);
  active.get(set.backend)?.handle.unregister();
  const { backend, threads, layout, graphOptimizationLevel, nchwcBlock } = set;
  const restore = swapKernels(set.configs);
  const handle: EngineHandle = {
    backend,
    path: 'onnxruntime',
    kernels: set.configs.map((c) => c.kernelName),
    stats: set.stats,
    unregister: () => {
      restore();
      set.dispose();
      if (active.get(backend)?.handle === handle) active.delete(backend);
    },
  };
  active.set(backend, { handle, threads, layout, graphOptimizationLevel, nchwcBlock });
  return handle;
}

/** Unregistered onnxruntime kernel configs with their own session cache (benchmarks, custom registries). */
export interface OrtKernelSet {
  backend: EngineBackendName;
  threads: number;
  layout: LayoutChoice;
  graphOptimizationLevel: GraphOptimizationLevel;
  /** MLAS's NCHWc block size the 'nchwc' form uses; 1 when it is off or this CPU has none. */
  nchwcBlock: number;
  configs: KernelConfig[];
  stats(): SessionStats & KernelCounters;
  /** Releases the sessions. */
  dispose(): void;
}

/**
 * Builds the kernel configs {@link registerOrtKernels} registers, without
 * registering them. Cases they do not handle go to the kernels registered for
 * the backend at this moment.
 */
export function createOrtKernels(options: RegisterOrtKernelsOptions): OrtKernelSet {
  checkBackend(options.backend);
  const threads = options.threads ?? availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`@bmc/engine: threads must be a positive integer, got ${options.threads}`);
  }
  const maxSessions = options.maxSessions ?? 512;
  if (!Number.isInteger(maxSessions) || maxSessions < 1) {
    throw new Error(`@bmc/engine: maxSessions must be a positive integer, got ${options.maxSessions}`);
  }
  const native = loadOrtNative();
  const backend = options.backend;
  const layout = resolveLayout(options.layout);
  const graphOptimizationLevel = options.graphOptimizationLevel ?? 'all';
  const cache = new SessionCache(native, {
    threads,
    graphOptimizationLevel,
    memoryArena: options.memoryArena ?? false,
    maxSessions,
  });
  // Delegation must reach the backend's own kernels, never an earlier registration of ours.
  const names = ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter'];
  const previous = previousKernels(backend, names);
  // wasm has no Conv2DBackpropFilter of its own: cases ours delegates go to the wasm composition.
  if (backend === 'wasm' && !previous[Conv2DBackpropFilter]) {
    previous[Conv2DBackpropFilter] = makeWasmFilterGrad(wasmBlocks());
  }
  const nchwcBlock = options.nchwc === false ? 1 : nchwcBlockSize(native);
  const { configs, counters } = makeOrtKernels(backend, cache, layout, previous, nchwcBlock);
  markOurs(configs);
  return {
    backend,
    threads,
    layout,
    graphOptimizationLevel,
    nchwcBlock,
    configs,
    stats: () => ({ ...cache.stats(), native: { ...counters.native }, delegated: { ...counters.delegated } }),
    dispose: () => cache.clear(),
  };
}

function wasmBlocks() {
  const prev = previousKernels('wasm', [Conv2D, Transpose, Slice]);
  const get = (n: string) => {
    const k = prev[n];
    if (!k)
      throw new Error(`@bmc/engine: wasm kernel ${n} missing: import '@tensorflow/tfjs-backend-wasm' first`);
    return k.kernelFunc;
  };
  return { conv2d: get(Conv2D), transpose: get(Transpose), slice: get(Slice) };
}

/**
 * Registers the pure-wasm Conv2DBackpropFilter (no onnxruntime). Only for the
 * wasm backend; the cpu backend has its own.
 */
export function registerWasmFilterGrad(): EngineHandle {
  active.get('wasm')?.handle.unregister();
  const config = makeWasmFilterGrad(wasmBlocks());
  markOurs([config]);
  const restore = swapKernels([config]);
  const handle: EngineHandle = {
    backend: 'wasm',
    path: 'wasm-fallback',
    kernels: [Conv2DBackpropFilter],
    stats: () => undefined,
    unregister: () => {
      restore();
      if (active.get('wasm')?.handle === handle) active.delete('wasm');
    },
  };
  active.set('wasm', { handle });
  return handle;
}

export interface InstallEngineOptions extends RegisterOrtKernelsOptions {
  /** 'wasm-fallback' skips onnxruntime even when it loads (benchmarks, debugging). */
  prefer?: EnginePath;
}

/**
 * The entry point for training code: onnxruntime kernels when onnxruntime-node
 * loads, otherwise (wasm backend) the pure-wasm filter gradient; the cpu
 * backend needs nothing. Never throws because onnxruntime is missing;
 * `describeEngine()` says what happened.
 */
export function installEngineKernels(options: InstallEngineOptions): EngineHandle | undefined {
  checkBackend(options.backend);
  if (options.prefer !== 'wasm-fallback') {
    try {
      return registerOrtKernels(options);
    } catch (e) {
      lastOrtError = e instanceof Error ? e.message : String(e);
    }
  }
  return options.backend === 'wasm' ? registerWasmFilterGrad() : undefined;
}

let lastOrtError: string | undefined;

/** What is installed, for `bmc doctor` and logs. Loads onnxruntime-node to report on it. */
export function describeEngine(): EngineDescription {
  let onnxruntime: EngineDescription['onnxruntime'];
  try {
    const n = loadOrtNative();
    onnxruntime = { available: true, version: n.version, packageDir: n.packageDir };
  } catch (e) {
    onnxruntime = { available: false, reason: e instanceof Error ? e.message : (lastOrtError ?? String(e)) };
  }
  const list = [...active.values()].map((a) => ({
    backend: a.handle.backend,
    path: a.handle.path,
    kernels: [...a.handle.kernels],
    ...(a.threads ? { threads: a.threads } : {}),
    ...(a.layout ? { layout: a.layout } : {}),
    ...(a.graphOptimizationLevel ? { graphOptimizationLevel: a.graphOptimizationLevel } : {}),
    ...(a.nchwcBlock ? { nchwcBlock: a.nchwcBlock } : {}),
    ...(a.handle.stats() ? { stats: a.handle.stats() } : {}),
  }));
  const parts = list.map((a) =>
    a.path === 'onnxruntime'
      ? `${a.backend}: convolutions on onnxruntime-node ${onnxruntime.version} (${a.threads} threads)`
      : `${a.backend}: pure-wasm Conv2DBackpropFilter (onnxruntime ${onnxruntime.available ? 'not used' : `unavailable: ${onnxruntime.reason}`})`,
  );
  const summary =
    parts.length > 0
      ? parts.join('; ')
      : `no engine kernels installed (onnxruntime-node ${onnxruntime.available ? `${onnxruntime.version} available` : `unavailable: ${onnxruntime.reason}`})`;
  return { onnxruntime, active: list, summary };
}
