import * as tf from '@tensorflow/tfjs';
import { newestGoodCheckpoint } from './checkpoints.js';
import { estimateStepHeap, imagesPerPass, WASM_HEAP_LIMIT_BYTES } from './memory-plan.js';
import type { TrainSession } from './setup.js';
import { TrainingError } from './state.js';

/** True for the errors a WebAssembly module throws when its heap ran out or it aborted. */
export function isWasmAbort(err: unknown): boolean {
  if (err instanceof WebAssembly.RuntimeError) return true;
  const msg = err instanceof Error ? err.message : String(err);
  return /memory access out of bounds|^Aborted\(|Cannot enlarge memory|RuntimeError/i.test(msg);
}

function heapBytes(): number | undefined {
  try {
    const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
    return b.wasm?.HEAPU8?.buffer.byteLength;
  } catch {
    return undefined;
  }
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/**
 * What to tell the user when the tfjs-wasm module aborted during training although the memory plan let
 * the run start (its estimate was too low, or another part of the run — validation on large images —
 * needed more): which step, how large the heap had grown, which checkpoint is intact (checkpoints are
 * written whole or not at all, so the newest one that verifies is the state to resume from), how to go
 * on. The wasm error's own text ("memory access out of bounds") says nothing useful to a user and is
 * kept for the run log only. Any other error is returned unchanged.
 */
export function explainWasmAbort(err: unknown, s: TrainSession): unknown {
  if (!isWasmAbort(err) || s.backend.name !== 'wasm') return err;
  const heap = heapBytes();
  let planned: number | undefined;
  try {
    planned = estimateStepHeap(s.detector.model, {
      side: s.config.data.imageSize,
      imagesPerPass: imagesPerPass(s.config),
      optimizerSlots: s.config.optim.type === 'adamw' ? 2 : 1,
    }).peakBytes;
  } catch {
    planned = undefined;
  }
  const checkpoint = newestGoodCheckpoint(s.paths, () => {});
  try {
    s.log.write({
      event: 'wasm-abort',
      step: s.state.step,
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      heapBytes: heap,
      plannedBytes: planned,
    });
  } catch {
    // the log is best effort here: the report below is what matters
  }
  const where =
    `the tfjs-wasm module ran out of memory and aborted at step ${s.state.step + 1}` +
    (heap ? ` (its heap had grown to ${gib(heap)} of the ${gib(WASM_HEAP_LIMIT_BYTES)} limit` : ' (') +
    (planned ? `; the memory plan estimated ${gib(planned)} for a step)` : ')');
  const intact = checkpoint
    ? `The newest intact checkpoint is ${checkpoint}; nothing after it was saved. Continue with: bmc train --resume ${s.paths.root} (after lowering data.imageSize or optim.microBatch: --resume keeps the run's config, so start a new run for a smaller size with --init ${checkpoint}).`
    : `No checkpoint had been written yet (${s.paths.checkpoints} is empty): nothing was saved.`;
  return new TrainingError(
    `${where}. ${intact} Ways to fit: a smaller data.imageSize (with data.sampling crops, the crop side), optim.microBatch 1, or a smaller model.`,
    { cause: err },
  );
}
