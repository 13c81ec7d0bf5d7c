// Loader throughput on TXL-PBC at 512 x 512 with the default training augmentation, against a
// reference measured in the same run: plain sharp decode + resize (no augmentation, no float
// conversion) over the same images with the same concurrency. Also times the smear generator.
// Run after `pnpm build`. BMC_BENCH_IMAGES sets how many images (default 240).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report } from '@bmc/bench-utils';
import sharp from 'sharp';
import { BatchLoader, datasetSource, defaultTrainAugment, generateSmear, readYolo } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
function sharedData() {
  if (process.env.BMC_SHARED_DATA) return process.env.BMC_SHARED_DATA;
  let d = here;
  while (!existsSync(join(d, 'pnpm-workspace.yaml')) && dirname(d) !== d) d = dirname(d);
  return resolve(d, '..', 'shared', 'data');
}

const SIZE = 512;
const N = Number(process.env.BMC_BENCH_IMAGES ?? 240);
const BATCH = 8;
const reportRows = [];
const root = join(sharedData(), 'txl-pbc');

if (!existsSync(root)) {
  console.log(`loader bench skipped: ${root} not found (set BMC_SHARED_DATA)`);
} else {
  const full = await readYolo(root, { split: 'train' });
  const ds = { ...full, images: full.images.slice(0, N) };
  console.log(
    `TXL-PBC train, first ${ds.images.length} images, ${SIZE}x${SIZE}, batch ${BATCH}, libuv threads ${process.env.UV_THREADPOOL_SIZE ?? 4}`,
  );

  // Reference: decode + resize to fit 512 in libvips, 8-bit output, same number in flight.
  const ref = async () => {
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < ds.images.length) {
        const img = ds.images[next++];
        await sharp(img.file).rotate().resize(SIZE, SIZE, { fit: 'inside' }).removeAlpha().raw().toBuffer();
      }
    };
    await Promise.all(Array.from({ length: BATCH * 3 }, worker));
    return ds.images.length / ((performance.now() - t0) / 1000);
  };

  const loaderRun = async (augment) => {
    const loader = new BatchLoader(datasetSource(ds), { batchSize: BATCH, augment, seed: 1 });
    for await (const _ of loader.epoch(0));
    return loader.stats.imagesPerSecond;
  };

  await ref(); // warm the page cache and libvips
  const rounds = [];
  for (let r = 0; r < 2; r++) {
    const refIps = await ref();
    const augIps = await loaderRun(defaultTrainAugment(SIZE));
    const plainIps = await loaderRun({ size: SIZE, normalize: true });
    rounds.push({ refIps, augIps, plainIps });
  }
  const best = (k) => Math.max(...rounds.map((r) => r[k]));
  const refIps = best('refIps');
  const augIps = best('augIps');
  const plainIps = best('plainIps');
  // As ms per image, so that the ratio reads like the other suites (above 1: slower than the reference).
  reportRows.push(
    {
      name: `loader ${SIZE} px, letterbox + normalise (float32)`,
      ms: 1000 / plainIps,
      refMs: 1000 / refIps,
      ref: 'sharp decode + resize (uint8)',
    },
    {
      name: `loader ${SIZE} px, full training augmentation`,
      ms: 1000 / augIps,
      refMs: 1000 / refIps,
      ref: 'sharp decode + resize (uint8)',
    },
  );
  console.log(
    `reference sharp decode+resize (uint8):      ${refIps.toFixed(1)} images/s  (${(1000 / refIps).toFixed(1)} ms/image)`,
  );
  console.log(
    `loader, letterbox + normalise (float32):    ${plainIps.toFixed(1)} images/s  (${(1000 / plainIps).toFixed(1)} ms/image)  ratio ${(plainIps / refIps).toFixed(2)}x of reference`,
  );
  console.log(
    `loader, full training augmentation:         ${augIps.toFixed(1)} images/s  (${(1000 / augIps).toFixed(1)} ms/image)  ratio ${(augIps / refIps).toFixed(2)}x of reference`,
  );
}

for (const size of [256, 320, 512]) {
  const opts = { width: size, height: size };
  generateSmear(0, 0, opts);
  const n = size === 512 ? 8 : 20;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) generateSmear(0, i, opts);
  const ms = (performance.now() - t0) / n;
  reportRows.push({ name: `smear generator ${size}x${size} (in memory)`, ms });
  console.log(
    `smear generator ${size}x${size}: ${ms.toFixed(1)} ms/image (${(1000 / ms).toFixed(1)} images/s, in memory)`,
  );
}
report('data-loader', reportRows);
