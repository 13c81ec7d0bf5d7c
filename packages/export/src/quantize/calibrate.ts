/**
 * Runs the float model over calibration inputs in onnxruntime-node with the
 * tensors to quantise added as graph outputs, and collects their ranges.
 */
import { DT, encodeModel, type ModelObj } from './graph.js';
import type { RangeCollector } from './ranges.js';

/** One network input, already preprocessed as inference does it (NCHW float32). */
export interface CalibrationInput {
  data: Float32Array;
  dims: readonly number[];
}

/** The float model with `tensors` as extra graph outputs (type float32, shape left open). */
export function calibrationModel(model: ModelObj, tensors: readonly string[]): Uint8Array {
  const have = new Set(model.graph.output.map((o) => o.name));
  const extra = tensors
    .filter((t) => !have.has(t))
    .map((name) => ({ name, type: { tensorType: { elemType: DT.FLOAT } } }));
  return encodeModel({ ...model, graph: { ...model.graph, output: [...model.graph.output, ...extra] } });
}

interface OrtModule {
  InferenceSession: {
    create(
      bytes: Uint8Array,
      options?: Record<string, unknown>,
    ): Promise<{
      inputNames: readonly string[];
      run(
        feeds: Record<string, unknown>,
        fetches?: readonly string[],
      ): Promise<Record<string, { data: unknown; dispose?: () => void }>>;
      release(): Promise<void>;
    }>;
  };
  Tensor: new (type: 'float32', data: Float32Array, dims: readonly number[]) => unknown;
}

/**
 * Feeds every input through the float model and adds each of `tensors` to `collector`
 * (one image per input). Returns the number of inputs run. onnxruntime-node is an optional
 * peer dependency, loaded here only.
 */
export async function collectRanges(
  model: ModelObj,
  tensors: readonly string[],
  inputs: AsyncIterable<CalibrationInput> | Iterable<CalibrationInput>,
  collector: RangeCollector,
  options: { threads?: number; onInput?: (index: number) => void } = {},
): Promise<number> {
  let ort: OrtModule;
  try {
    ort = (await import('onnxruntime-node')) as unknown as OrtModule;
  } catch (e) {
    throw new Error(`quantize: calibration needs onnxruntime-node (${(e as Error).message})`);
  }
  const session = await ort.InferenceSession.create(calibrationModel(model, tensors), {
    intraOpNumThreads: options.threads ?? 0,
    // Basic optimisations only: no fusion may swallow a tensor whose range is wanted.
    graphOptimizationLevel: 'basic',
  });
  let count = 0;
  try {
    const inputName = session.inputNames[0]!;
    for await (const input of inputs) {
      const out = await session.run(
        { [inputName]: new ort.Tensor('float32', input.data, input.dims) },
        tensors,
      );
      for (const t of tensors) {
        const v = out[t];
        if (!v) throw new Error(`quantize: calibration run did not return tensor '${t}'`);
        collector.add(t, v.data as Float32Array);
        v.dispose?.();
      }
      collector.endImage();
      options.onInput?.(count);
      count++;
    }
  } finally {
    await session.release();
  }
  return count;
}
