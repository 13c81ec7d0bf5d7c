// Data-parallel training across worker threads: R replicas, each with half
// (1/R) of the batch; gradients land in one SharedArrayBuffer, the main thread
// averages them and applies SGD to the shared parameters, which every replica
// loads at the start of its next step (so replicas are identical by
// construction; checked by checksums). Compared against one process doing the
// whole batch with the same engine.
import { Worker } from 'node:worker_threads';

const LR = 0.01;

function spawn(R, opts, params, grads) {
  return Array.from({ length: R }, (_, rank) => {
    const w = new Worker(new URL('./replica-worker.mjs', import.meta.url), {
      workerData: { rank, ...opts, params, grads },
    });
    w.on('error', (e) => {
      throw e;
    });
    return w;
  });
}

const ask = (w, msg, type) =>
  new Promise((resolve) => {
    const on = (m) => {
      if (m.type === type) {
        w.off('message', on);
        resolve(m);
      }
    };
    w.on('message', on);
    w.postMessage(msg);
  });

async function run(R, { depth, batch, size, engine, ortThreads, steps }) {
  const probe = new SharedArrayBuffer(4);
  void probe;
  // Parameter count is known after the first replica builds the model: allocate generously, then check.
  const maxParams = 12_000_000;
  const params = new SharedArrayBuffer(maxParams * 4);
  const grads = new SharedArrayBuffer(R * maxParams * 4);
  const workers = spawn(R, { depth, shardBatch: batch / R, size, engine, ortThreads }, params, grads);
  // Rank 0 first, so the others load its initial weights.
  const { total } = await ask(workers[0], { type: 'init' }, 'ready');
  if (total > maxParams) throw new Error(`model has ${total} params > ${maxParams}`);
  await Promise.all(workers.slice(1).map((w) => ask(w, { type: 'init' }, 'ready')));
  const P = new Float32Array(params, 0, total);
  const G = Array.from({ length: R }, (_, r) => new Float32Array(grads, r * maxParams * 4, total));
  const times = [];
  const tensors = [];
  for (let s = 0; s < steps; s++) {
    const t0 = performance.now();
    const done = await Promise.all(workers.map((w) => ask(w, { type: 'step' }, 'done')));
    // Average and apply SGD (main thread; ~2 x params float ops).
    const scale = LR / R;
    for (let i = 0; i < total; i++) {
      let g = 0;
      for (let r = 0; r < R; r++) g += G[r][i];
      P[i] -= scale * g;
    }
    times.push(performance.now() - t0);
    tensors.push(done.map((d) => d.tensors));
  }
  const sums = await Promise.all(workers.map((w) => ask(w, { type: 'checksum' }, 'checksum')));
  await Promise.all(workers.map((w) => w.terminate()));
  const warm = times.slice(1).sort((a, b) => a - b);
  return {
    replicas: R,
    stepMs: warm[warm.length >> 1],
    identical: sums.every((c) => c.value === sums[0].value),
    tensorsFlat: tensors.slice(1).every((t, i) => t.join() === tensors[i].join()),
  };
}

export async function benchWorkers({ quick, fmt }) {
  const [depth, batch, size, steps] = quick ? [18, 2, 128, 3] : [18, 2, 256, 4];
  console.log(
    `\n== data-parallel replicas in worker_threads, ResNet${depth} fwd+bwd+SGD, batch ${batch}, ${size}px ==`,
  );
  const out = [];
  for (const [engine, single, perReplica] of [
    ['onnxruntime', 2, 1],
    ['wasm', 1, 1],
  ]) {
    const one = await run(1, { depth, batch, size, engine, ortThreads: single, steps });
    const two = await run(2, { depth, batch, size, engine, ortThreads: perReplica, steps });
    out.push({ engine, one, two, speedup: one.stepMs / two.stepMs });
    console.log(
      `${engine.padEnd(12)} 1 replica (${engine === 'wasm' ? 'wasm 1 thread' : `ort ${single} threads`}) ${fmt(one.stepMs)} ms   ` +
        `2 replicas (${engine === 'wasm' ? 'wasm' : `ort ${perReplica} thread`} each) ${fmt(two.stepMs)} ms   ` +
        `scaling x${(one.stepMs / two.stepMs).toFixed(2)}   replicas identical: ${two.identical}   tensors flat: ${two.tensorsFlat}`,
    );
  }
  return out;
}
