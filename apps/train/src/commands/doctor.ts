import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, cpus, platform, totalmem } from 'node:os';
import { type BackendChoice, describeBackend, initBackend } from '@bmc/core/backend';

export interface DoctorReport {
  node: string;
  platform: string;
  cpu: { model: string; cores: number; features: string[] };
  memoryGiB: number;
  packages: Record<string, string | null>;
  backend: BackendChoice | { error: string };
  cuda: { nvidiaSmi: boolean; libcudart11: boolean; libcudnn8: boolean; usable: boolean; missing: string[] };
  engine: string;
  /** Whether glibc's malloc was tuned at start-up for onnxruntime's large buffers (see @bmc/engine's README). */
  mallocTuned: boolean;
}

/** The start-up settings that make onnxruntime reuse one heap for its large per-call buffers. */
export const MALLOC_TUNING = {
  MALLOC_MMAP_THRESHOLD_: '33554432',
  MALLOC_TRIM_THRESHOLD_: '4294967296',
  MALLOC_TOP_PAD_: '268435456',
} as const;

const require = createRequire(import.meta.url);

function versionOf(pkg: string): string | null {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    return null;
  }
}

/** CPU flags that matter for the kernels bmc can use (wasm SIMD needs SSE4.1; onnxruntime's MLAS uses AVX2/AVX-512/AMX). */
export function cpuFeatures(): string[] {
  if (!existsSync('/proc/cpuinfo')) return [];
  const flags = new Set(
    (readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/),
  );
  return ['sse4_1', 'avx', 'avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile'].filter((f) =>
    flags.has(f),
  );
}

function sharedLibrary(name: RegExp): boolean {
  try {
    return name.test(execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
}

function commandExists(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What `tfjs-node-gpu` would need here: its prebuilt libtensorflow is built for CUDA 11.2 + cuDNN 8.1. */
function cudaStatus(): DoctorReport['cuda'] {
  const nvidiaSmi = commandExists('nvidia-smi');
  const libcudart11 = sharedLibrary(/libcudart\.so\.11/);
  const libcudnn8 = sharedLibrary(/libcudnn\.so\.8/);
  const missing: string[] = [];
  if (!nvidiaSmi) missing.push('NVIDIA driver (nvidia-smi not found)');
  if (!libcudart11) missing.push('CUDA 11.x runtime (libcudart.so.11)');
  if (!libcudnn8) missing.push('cuDNN 8 (libcudnn.so.8)');
  if (!versionOf('@tensorflow/tfjs-node-gpu')) missing.push('@tensorflow/tfjs-node-gpu package');
  return { nvidiaSmi, libcudart11, libcudnn8, usable: missing.length === 0, missing };
}

async function engineStatus(): Promise<string> {
  try {
    const engine = (await import(/* @vite-ignore */ '@bmc/engine')) as { describeEngine?: () => unknown };
    const d = engine.describeEngine?.() as { summary?: string } | string | undefined;
    return typeof d === 'string' ? d : (d?.summary ?? JSON.stringify(d));
  } catch (err) {
    return `@bmc/engine not available (${(err as Error).message.split('\n')[0]})`;
  }
}

export async function doctor(): Promise<DoctorReport> {
  const cpuList = cpus();
  let backend: DoctorReport['backend'];
  try {
    backend = await initBackend();
  } catch (err) {
    backend = { error: (err as Error).message };
  }
  return {
    node: process.version,
    platform: `${platform()} ${arch()}`,
    cpu: { model: cpuList[0]?.model ?? 'unknown', cores: cpuList.length, features: cpuFeatures() },
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    packages: Object.fromEntries(
      [
        '@tensorflow/tfjs',
        '@tensorflow/tfjs-backend-wasm',
        '@tensorflow/tfjs-node',
        '@tensorflow/tfjs-node-gpu',
      ].map((p) => [p, versionOf(p)]),
    ),
    backend,
    cuda: cudaStatus(),
    engine: await engineStatus(),
    mallocTuned: Object.keys(MALLOC_TUNING).every((k) => process.env[k] !== undefined),
  };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `node ${r.node} on ${r.platform}, ${r.cpu.cores} cores (${r.cpu.model}), ${r.memoryGiB} GiB`,
    `cpu features: ${r.cpu.features.join(' ') || 'unknown'}`,
    'error' in r.backend ? `backend: none (${r.backend.error})` : describeBackend(r.backend),
    `engine: ${r.engine}`,
    r.mallocTuned || !r.platform.startsWith('linux')
      ? `glibc malloc tuning: ${r.mallocTuned ? 'on' : 'n/a'}`
      : `glibc malloc tuning: off (CPU training of R50 models is ~10% faster started with ${Object.entries(
          MALLOC_TUNING,
        )
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')})`,
    `tfjs-node-gpu usable: ${r.cuda.usable ? 'yes' : `no, missing: ${r.cuda.missing.join('; ')}`}`,
    'packages:',
    ...Object.entries(r.packages).map(([k, v]) => `  ${k}: ${v ?? 'not installed'}`),
  ];
  return lines.join('\n');
}
