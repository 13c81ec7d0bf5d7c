import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { expect } from 'vitest';

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

/**
 * Asserts that a `bmc classify train` run on the six synthetic cell types learnt, from its log.jsonl: the
 * mean loss of its first five steps starts near chance (above 1.3; ln 6 = 1.79), that of its last five
 * ends below 0.6x of it, and tf.memory().numTensors after every step equals the count after the first
 * (which creates AdamW's slots).
 */
export function expectClassifierLearnt(run: string): void {
  const steps = readFileSync(join(run, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { event: string; loss: number; tensors: number })
    .filter((e) => e.event === 'step');
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(steps.slice(0, 5).map((e) => e.loss));
  const last = mean(steps.slice(-5).map((e) => e.loss));
  expect(first).toBeGreaterThan(1.3);
  expect(last).toBeLessThan(0.6 * first);
  expect(new Set(steps.map((e) => e.tensors)).size).toBe(1);
}
