// Build a tiny TensorFlow.js functional model (three Conv2D layers) and export it to ONNX
// (opset 17, NCHW input with symbolic N, H, W) with @bmc/export; writes the file to a temp path
// (or argv[2]) and prints it, so run-onnx-web.mjs can run it.
//
//   node examples/export-onnx.mjs [out.onnx]
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportOnnx, writeFileAtomic } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';

await tf.setBackend('cpu');
const input = tf.input({ shape: [null, null, 3], name: 'images' });
let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input);
x = tf.layers
  .conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' })
  .apply(x);
const out = tf.layers.conv2d({ filters: 4, kernelSize: 1, name: 'head' }).apply(x);
const model = tf.model({ inputs: input, outputs: out });

const { bytes, summary } = exportOnnx(model);
const path = process.argv[2] ?? join(mkdtempSync(join(tmpdir(), 'bmc-onnx-')), 'tiny.onnx');
writeFileAtomic(path, bytes);
console.log(`nodes: ${summary.nodes}, parameters: ${summary.parameters}, bytes: ${bytes.length}`);
console.log(`wrote ${path}`);
model.dispose();
