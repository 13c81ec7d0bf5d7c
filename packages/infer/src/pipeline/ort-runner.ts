import { InputError } from '@bmc/core';
import type { BmcMetadata } from '@bmc/export/metadata';
import type { InferenceSession, Tensor } from 'onnxruntime-web';
import type { HeadOutputs, NetworkRunner } from './types.js';

/** A model file that cannot be used; the message names the file and the problem. */
export class ModelLoadError extends InputError {
  override name = 'ModelLoadError';
}

export function checkGraphNames(
  path: string,
  meta: BmcMetadata,
  inputs: readonly string[],
  outputs: readonly string[],
): void {
  if (!inputs.includes(meta.input.name)) {
    throw new ModelLoadError(
      `${path}: metadata names input '${meta.input.name}' but the graph has ${inputs.join(', ')}`,
    );
  }
  const wanted = [
    meta.outputs.clsLogits,
    meta.outputs.boxDeltas,
    ...(meta.outputs.iouLogits ? [meta.outputs.iouLogits] : []),
  ];
  const missing = wanted.filter((n) => !outputs.includes(n));
  if (missing.length)
    throw new ModelLoadError(
      `${path}: graph lacks output(s) ${missing.join(', ')} (has ${outputs.join(', ')})`,
    );
}

// Types only (erased): onnxruntime-node and onnxruntime-web share onnxruntime-common's API.
type OrtSessionLike = Pick<InferenceSession, 'run'>;
type OrtTensorCtor = new (type: 'float32', data: Float32Array, dims: readonly number[]) => Tensor;

/** Wraps an onnxruntime session (node or web) as a {@link NetworkRunner}. */
export function ortRunner(session: OrtSessionLike, meta: BmcMetadata, Tensor: OrtTensorCtor): NetworkRunner {
  const names = [
    meta.outputs.clsLogits,
    meta.outputs.boxDeltas,
    ...(meta.outputs.iouLogits ? [meta.outputs.iouLogits] : []),
  ];
  return async (input, height, width): Promise<HeadOutputs> => {
    const feeds = { [meta.input.name]: new Tensor('float32', input, [1, 3, height, width]) };
    const out = await session.run(feeds, names as string[]);
    const get = (n: string) => out[n]!.data as Float32Array;
    return {
      clsLogits: get(meta.outputs.clsLogits),
      boxDeltas: get(meta.outputs.boxDeltas),
      ...(meta.outputs.iouLogits ? { iouLogits: get(meta.outputs.iouLogits) } : {}),
    };
  };
}
