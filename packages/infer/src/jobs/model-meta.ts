import { readFile } from 'node:fs/promises';
import { type BmcMetadata, readBmcMetadata } from '@bmc/export/metadata';
import type { Detector } from '../model.js';
import { ModelLoadError } from '../pipeline/ort-runner.js';

/**
 * The model as a submitter needs it: its file (hashed into the queue name and the slide ids) and
 * its metadata (pixel scale, tiling, NMS settings for the assembly), without an onnxruntime
 * session: `bmc detect --queue` never runs the network itself, so the machine that submits needs
 * neither the model's memory nor its start-up time.
 */
export async function loadModelMeta(path: string): Promise<Detector> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new ModelLoadError(`${path}: cannot read model file (${(e as Error).message})`);
  }
  let meta: BmcMetadata;
  try {
    meta = readBmcMetadata(bytes, path);
  } catch (e) {
    throw new ModelLoadError((e as Error).message);
  }
  const remote = () => {
    throw new Error('bmc detect --queue: detection runs on the workers, not in the submitter');
  };
  return { path, meta, sizeBytes: bytes.length, run: remote, detect: remote, dispose: async () => {} };
}
