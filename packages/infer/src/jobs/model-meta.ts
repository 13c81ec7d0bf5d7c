import { type Detector, readModelFile } from '../model.js';

/**
 * The model as a submitter needs it: its file (hashed into the queue name and the slide ids) and
 * its metadata (pixel scale, tiling, NMS settings for the assembly), without an onnxruntime
 * session: `bmc detect --queue` never runs the network itself, so the machine that submits needs
 * neither the model's memory nor its start-up time.
 */
export async function loadModelMeta(path: string): Promise<Detector> {
  const { bytes, meta } = await readModelFile(path);
  const remote = () => {
    throw new Error('bmc detect --queue: detection runs on the workers, not in the submitter');
  };
  return { path, meta, sizeBytes: bytes.length, run: remote, detect: remote, dispose: async () => {} };
}
