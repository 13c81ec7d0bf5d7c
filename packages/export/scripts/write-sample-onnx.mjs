// Writes runs/export/<preset>.onnx for a detector preset (default: tiny) with random
// weights, for tooling/export_check_onnx.py and for trying the inference app.
// Run after `pnpm build`: node scripts/write-sample-onnx.mjs [--with-postprocess] [tiny|thesis|baseline ...]
import { join } from 'node:path';
import { buildDetector } from '@bmc/heads-iou';
import * as tf from '@tensorflow/tfjs';
import { detectorMetadata, exportDetectorOnnx, writeFileAtomic } from '../dist/index.js';

await tf.setBackend('cpu');
const withPostprocess = process.argv.includes('--with-postprocess');
const presets = process.argv.slice(2).filter((a) => !a.startsWith('--'));
for (const preset of presets.length ? presets : ['tiny']) {
  const det = buildDetector(preset);
  const { bytes, summary } = exportDetectorOnnx(
    det.model,
    detectorMetadata(det.config, { model: { preset } }),
    { withPostprocess },
  );
  const file = join(
    import.meta.dirname,
    '..',
    '..',
    '..',
    'runs',
    'export',
    `${preset}${withPostprocess ? '-postprocess' : ''}.onnx`,
  );
  writeFileAtomic(file, bytes);
  console.log(
    `${file}: ${(bytes.length / 2 ** 20).toFixed(2)} MiB, ${summary.nodes} nodes, ${summary.parameters} parameters`,
  );
  det.model.dispose();
}
