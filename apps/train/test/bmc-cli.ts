import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const BIN = new URL('../bin/bmc.mjs', import.meta.url).pathname;

/** A stack trace line in a command's output: bad input must be reported without one. */
export const STACK = /\n\s+at /;

/** Runs bin/bmc.mjs as a user does (BMC_DEBUG off, so errors print as users see them). */
export function runBmc(
  args: string[],
  timeoutMs?: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, BMC_DEBUG: '' },
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

/** The part of onnxruntime-node the tests call. */
export interface OrtNode {
  InferenceSession: {
    create(
      file: string,
    ): Promise<{ run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>> }>;
  };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => unknown;
}

/** onnxruntime-node is @bmc/infer's dependency (the runtime bmc detect uses): that copy. */
export const ortNode = createRequire(import.meta.resolve('@bmc/infer'))('onnxruntime-node') as OrtNode;
