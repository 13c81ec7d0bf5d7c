// Run an ONNX file (e.g. the one export-onnx.mjs wrote) with onnxruntime-web's wasm backend,
// the runtime a browser uses, here in Node; feeds a random [1, 3, 64, 64] image and prints
// each output's shape.
//
//   node examples/run-onnx-web.mjs path/to/model.onnx
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web';

const path = process.argv[2];
if (!path) {
  console.error('usage: node run-onnx-web.mjs model.onnx');
  process.exit(2);
}
ort.env.wasm.numThreads = 1;
const session = await ort.InferenceSession.create(readFileSync(path), { executionProviders: ['wasm'] });
const [h, w] = [64, 64];
const data = Float32Array.from({ length: 3 * h * w }, () => Math.random());
const outputs = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data, [1, 3, h, w]) });
for (const name of session.outputNames) console.log(`output ${name}: [${outputs[name].dims.join(', ')}]`);
