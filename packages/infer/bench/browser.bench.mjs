// Browser inference time per image in the viewer (onnxruntime-web WASM) with and without threads,
// for a full-size detector and the tiny fixture, driven by playwright-core with Debian's Chromium.
// Run after `pnpm build` (uses dist/viewer); skipped with a message when /usr/bin/chromium is absent.
//
// node bench/browser.bench.mjs [--presets baseline] [--size 512]
import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { report } from '@bmc/bench-utils';
import { encodePng, generateSmear, writeFileAtomic } from '@bmc/data';
import { createServer, decodeToPixels, loadDetector } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const SIZE = Number(arg('size', '512'));
const PRESETS = arg('presets', 'baseline').split(',').filter(Boolean);
const ITERS = Number(arg('iters', '3'));

if (!existsSync(CHROMIUM)) {
  console.log(`browser bench skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);
  process.exit(0);
}
const { chromium } = await import('playwright-core');
const dir = join(tmpdir(), `bmc-infer-browser-bench-${process.pid}`);
mkdirSync(dir, { recursive: true });
const image = join(dir, 'smear.png');
await writeFileAtomic(image, await encodePng(generateSmear(3, 0, { width: SIZE, height: SIZE }).image));

const models = [['tiny fixture', join(here, '..', 'test', 'fixtures', 'tiny-detector.onnx')]];
for (const p of PRESETS) {
  const f = join(root, 'runs', 'infer', `${p}.onnx`);
  if (existsSync(f)) models.push([p, f]);
  else console.log(`${p}: ${f} missing, run bench/infer.bench.mjs first (it exports the model)`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});
const rows = [];
const notes = [];
try {
  for (const [name, file] of models) {
    const detector = await loadDetector(file, { threads: 2 });
    const node = await detector.detect(await decodeToPixels(image), { tileSize: 0 });
    const server = await createServer({ model: detector, port: 0, logger: false });
    const url = await server.listen();
    const perThreads = {};
    for (const threads of [0, 1]) {
      const page = await browser.newPage();
      await page.goto(`${url}/${threads ? `?threads=${threads}` : ''}`);
      await page.waitForFunction(() => window.bmcViewer?.ready !== undefined);
      await page.evaluate(() => window.bmcViewer.ready);
      await page.setInputFiles('#image-file', image);
      await page.waitForFunction(() => window.bmcViewer.json() !== undefined, null, { timeout: 600_000 });
      const used = await page.evaluate(() => window.bmcViewer.threads);
      const times = [];
      for (let i = 0; i < ITERS; i++) times.push(await page.evaluate(() => window.bmcViewer.rerun()));
      times.sort((a, b) => a - b);
      const json = await page.evaluate(() => window.bmcViewer.json());
      let diff = 0;
      for (const [i, d] of json.detections.entries()) {
        for (let k = 0; k < 4; k++) diff = Math.max(diff, Math.abs(d.box[k] - node.detections[i].box[k]));
      }
      perThreads[used] = times[times.length >> 1];
      rows.push({
        name: `browser WASM ${used} thread${used > 1 ? 's' : ''}, ${name}, ${SIZE}x${SIZE}`,
        ms: times[times.length >> 1],
        extra: `${json.count} detections (node ${node.detections.length}), max box diff vs node ${diff.toExponential(2)} px`,
      });
      await page.close();
    }
    const [multi, single] = [Math.max(...Object.keys(perThreads).map(Number)), 1];
    if (multi > 1)
      notes.push(
        `${name}: threads speed-up ${(perThreads[single] / perThreads[multi]).toFixed(2)}x (${multi} vs 1)`,
      );
    await server.close();
    await detector.dispose();
  }
} finally {
  await browser.close();
}
report('infer-browser', rows, notes);
