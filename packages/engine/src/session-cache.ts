/**
 * One onnxruntime session per (kernel, geometry, options): a training run sees
 * a few dozen distinct convolution shapes, each compiled once and reused for
 * every step.
 */
import { encodeModel, type OnnxGraph } from './onnx-model.js';
import type { BindingSession, OrtNative } from './ort-binding.js';

export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionCacheOptions {
  /** Intra-op threads per session (ORT's MLAS uses them for GEMM/conv). */
  threads: number;
  graphOptimizationLevel: GraphOptimizationLevel;
  /**
   * ORT's per-session memory arena keeps each session's peak allocation
   * forever; with dozens of cached sessions that adds up, so it is off unless asked.
   */
  memoryArena: boolean;
  /**
   * Most sessions kept; the least recently used is released beyond it (input
   * sizes that vary, e.g. multi-scale training, would otherwise grow the cache forever).
   */
  maxSessions: number;
}

export interface SessionStats {
  sessions: number;
  runs: number;
  /** Sessions released because the cache was full. */
  evictions: number;
  /** Total milliseconds spent building and compiling sessions. */
  compileMs: number;
}

/** A float32 value for `run`: data (possibly a view into another heap) and its NHWC/HWIO dims. */
export interface Float32Value {
  data: Float32Array;
  dims: readonly number[];
}

export class CachedSession {
  constructor(
    private readonly native: OrtNative,
    private readonly session: BindingSession,
    private readonly onRun: () => void,
  ) {}

  /** Runs synchronously and writes the single output into `out.data` (no copy out of ORT). */
  run(feeds: Record<string, Float32Value>, outName: string, out: Float32Value): void {
    const T = this.native.Tensor;
    const f: Record<string, InstanceType<typeof T>> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = new T('float32', v.data, v.dims);
    this.session.run(f, { [outName]: new T('float32', out.data, out.dims) }, {});
    this.onRun();
  }

  dispose(): void {
    this.session.dispose();
  }
}

export class SessionCache {
  private readonly sessions = new Map<string, CachedSession>();
  private runs = 0;
  private evictions = 0;
  private compileMs = 0;

  constructor(
    private readonly native: OrtNative,
    readonly options: SessionCacheOptions,
  ) {}

  get(key: string, build: () => OnnxGraph): CachedSession {
    let s = this.sessions.get(key);
    if (s) {
      // Map order is insertion order: re-inserting marks it most recently used.
      this.sessions.delete(key);
      this.sessions.set(key, s);
    } else {
      if (this.sessions.size >= this.options.maxSessions) {
        const [oldestKey, oldest] = this.sessions.entries().next().value as [string, CachedSession];
        this.sessions.delete(oldestKey);
        oldest.dispose();
        this.evictions += 1;
      }
      const t0 = performance.now();
      const bytes = encodeModel(build(), key.replace(/[^A-Za-z0-9_]/g, '_'));
      const session = this.native.newSession();
      session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, {
        intraOpNumThreads: this.options.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: this.options.graphOptimizationLevel,
        enableCpuMemArena: this.options.memoryArena,
        enableMemPattern: this.options.memoryArena,
        // Idle pool threads would otherwise spin after every run and steal the
        // cores tfjs needs for the kernels that stay in wasm.
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      s = new CachedSession(this.native, session, () => {
        this.runs += 1;
      });
      this.sessions.set(key, s);
      this.compileMs += performance.now() - t0;
    }
    return s;
  }

  stats(): SessionStats {
    return {
      sessions: this.sessions.size,
      runs: this.runs,
      evictions: this.evictions,
      compileMs: this.compileMs,
    };
  }

  clear(): void {
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
  }
}
