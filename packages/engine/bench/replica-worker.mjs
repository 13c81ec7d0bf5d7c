// One data-parallel replica (worker thread): same model and seed as every other
// replica; per step it loads the shared parameters, computes gradients on its
// shard of the batch and writes them into its slot of the shared gradient buffer.
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installEngineKernels } from '../dist/index.js';
import { buildResNet, resnetLoss } from './resnet-model.mjs';

const { rank, depth, shardBatch, size, engine, ortThreads, params, grads } = workerData;
tf.env().set('IS_TEST', false);
await tf.setBackend('wasm');
await tf.ready();
installEngineKernels({
  backend: 'wasm',
  threads: ortThreads,
  prefer: engine === 'wasm' ? 'wasm-fallback' : 'onnxruntime',
});
const model = buildResNet({ depth, seed: 7 });
const sizes = model.trainable.map((v) => v.size);
const total = sizes.reduce((a, b) => a + b, 0);
const P = new Float32Array(params);
const G = new Float32Array(grads, rank * total * 4, total);
const x = tf.randomUniform([shardBatch, size, size, 3], 0, 1, 'float32', 100 + rank);

function loadParams() {
  let o = 0;
  model.trainable.forEach((v, i) => {
    v.assign(tf.tensor(P.subarray(o, o + sizes[i]), v.shape));
    o += sizes[i];
  });
}

function checksum() {
  let o = 0;
  let s = 0;
  for (const v of model.trainable) {
    const d = v.dataSync();
    for (let i = 0; i < d.length; i += 97) s += d[i] * ((o + i) % 13);
    o += d.length;
  }
  return s;
}

parentPort.on('message', (m) => {
  if (m.type === 'init') {
    // Rank 0 publishes its initial weights; all replicas then load the same ones.
    if (rank === 0) {
      let o = 0;
      for (const v of model.trainable) {
        P.set(v.dataSync(), o);
        o += v.size;
      }
    }
    parentPort.postMessage({ type: 'ready', total });
  } else if (m.type === 'step') {
    const t0 = performance.now();
    tf.tidy(loadParams);
    const { value, grads: g } = tf.variableGrads(() => resnetLoss(model, x), model.trainable);
    let o = 0;
    for (const v of model.trainable) {
      G.set(g[v.name].dataSync(), o);
      o += v.size;
    }
    const loss = value.dataSync()[0];
    tf.dispose([value, ...Object.values(g)]);
    parentPort.postMessage({
      type: 'done',
      loss,
      ms: performance.now() - t0,
      tensors: tf.memory().numTensors,
    });
  } else if (m.type === 'checksum') {
    tf.tidy(loadParams);
    parentPort.postMessage({ type: 'checksum', value: checksum() });
  }
});
