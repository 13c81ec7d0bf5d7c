// The machine a benchmark ran on, for its result file: lscpu model and flags, the SIMD features the
// kernels use, and the fp32 FMA peak (nominal from the clock, and measured by bench/fma-peak.c).
import { execSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export const sh = (c) => {
  try {
    return execSync(c, { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

/** lscpu model, flags, and the SIMD features that matter to the kernels. */
export function machineInfo() {
  const lscpu = sh('lscpu');
  const field = (k) => lscpu.match(new RegExp(`^${k}:\\s*(.*)$`, 'm'))?.[1]?.trim();
  const flags = (field('Flags') ?? '').split(/\s+/);
  const has = (f) => flags.includes(f);
  const mhz = Number(
    readFileSync('/proc/cpuinfo', 'utf8').match(/cpu MHz\s*:\s*([\d.]+)/)?.[1] ?? Number.NaN,
  );
  return {
    model: field('Model name'),
    vendor: field('Vendor ID'),
    family: field('CPU family'),
    modelNumber: field('Model'),
    cpus: Number(field('CPU\\(s\\)')),
    mhz,
    features: {
      avx2: has('avx2'),
      fma: has('fma'),
      avx512f: has('avx512f'),
      avx512_vnni: has('avx512_vnni'),
      avx512_bf16: has('avx512_bf16'),
      amx: has('amx_tile'),
    },
    flags: flags.join(' '),
  };
}

/**
 * fp32 FMA peak, two ways. Nominal: cores x clock x FMA lanes x 2 flops, where AMD family 25
 * (Zen 3 / Zen 4) has two 256-bit FMA pipes per core and Zen 4 runs AVX-512 on them double-pumped,
 * so AVX-512 does not raise the peak there: 2 pipes x 8 fp32 lanes = 16 FMA = 32 flop per cycle per
 * core (Intel server cores with AVX-512: 64). The clock /proc/cpuinfo shows in a VM is the nominal
 * (TSC) one; cores boost above it, so the peak is also measured: bench/fma-peak.c runs 12 independent
 * FMA chains on one core (thread CPU time, so other load does not count), x the cores.
 */
export function peakFlops(m) {
  const amd = m.vendor === 'AuthenticAMD';
  const flopsPerCycle = amd ? 32 : m.features.avx512f ? 64 : m.features.fma ? 32 : 16;
  const nominal = (m.cpus * m.mhz * flopsPerCycle) / 1000;
  let measured = null;
  const dir = mkdtempSync(join(tmpdir(), 'bmc-fma-'));
  try {
    const bin = join(dir, 'fma');
    execSync(`gcc -O2 -mavx2 -mfma -o ${bin} ${here('./fma-peak.c')}`, { stdio: 'ignore' });
    measured = JSON.parse(execSync(bin, { encoding: 'utf8' }));
  } catch {
    // no gcc or no AVX2: the nominal figure only
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const perCore = measured ? Math.max(measured.avx2GflopsPerCore, measured.avx512GflopsPerCore) : null;
  return {
    gflops: perCore ? perCore * m.cpus : nominal,
    nominalGflops: nominal,
    measuredPerCore: measured,
    how:
      `nominal ${nominal.toFixed(0)} = ${m.cpus} cores x ${(m.mhz / 1000).toFixed(3)} GHz (/proc/cpuinfo) x ${flopsPerCycle} fp32 flop/cycle ` +
      `(${amd ? '2 x 256-bit FMA pipes per core, AMD family 25; Zen 4 runs AVX-512 double-pumped on them' : m.features.avx512f ? '2 x 512-bit FMA units' : '2 x 256-bit FMA units'}, 2 flop per FMA)` +
      (perCore
        ? `; measured ${perCore.toFixed(1)} GFLOP/s per core (bench/fma-peak.c: AVX2 ${measured.avx2GflopsPerCore}, AVX-512 ${measured.avx512GflopsPerCore}; ${((perCore / flopsPerCycle) * 1).toFixed(2)} GHz effective) x ${m.cpus} cores = ${(perCore * m.cpus).toFixed(0)}, the peak used for the percentages`
        : ''),
  };
}

/** `uptime`'s line (the 1/5/15-minute load), or Node's load average where uptime is missing. */
export const uptime = () => sh('uptime') || `loadavg ${loadavg().map((l) => l.toFixed(2))}`;
