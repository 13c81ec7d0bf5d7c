import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeToPixels } from '../src/image.js';
import { type Detector, loadDetector } from '../src/model.js';
import type { DetectionJson } from '../src/pipeline/results.js';
import { createServer, type InferServer } from '../src/server.js';
import { maxBoxDiff, PACKAGE_ROOT, TINY_MODEL, writeSmear } from './helpers.js';
import { withOperatingPoint } from './operating-point-model.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(PACKAGE_ROOT, 'test-artifacts');

declare global {
  interface Window {
    bmcViewer: {
      threads: number;
      crossOriginIsolated: boolean;
      ready: Promise<void>;
      json(): DetectionJson | undefined;
      detectMs(): number | undefined;
      rerun(): Promise<number | undefined>;
    };
  }
}

// Needs Debian's Chromium (`apt-get install -y chromium`); playwright never downloads a browser here.
if (!existsSync(CHROMIUM)) {
  console.warn(
    `browser viewer tests skipped: ${CHROMIUM} not found (install it with: apt-get install -y chromium)`,
  );
}
describe.skipIf(!existsSync(CHROMIUM))('browser viewer (playwright-core + Debian Chromium)', () => {
  let dir: string;
  let viewerDir: string;
  let detector: Detector;
  let server: InferServer;
  let url: string;
  let browser: Browser;
  let smear: string;
  let nodeResult: DetectionJson['detections'];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bmc-infer-browser-'));
    // Build the viewer into a temp folder so the test does not depend on build order.
    viewerDir = join(dir, 'viewer');
    const { build } = await import('vite');
    await build({
      configFile: join(PACKAGE_ROOT, 'vite.config.ts'),
      logLevel: 'error',
      build: { outDir: viewerDir, emptyOutDir: true },
    });
    // 512 x 384: multiples of the stride, so the screenshot shows no padding (the fixture model reads the
    // mean-coloured padding as dark and fires along it; a trained model learns it is background).
    smear = await writeSmear(dir, 'smear.png', 21, 512, 384);
    detector = await loadDetector(TINY_MODEL, { threads: 1 });
    nodeResult = (await detector.detect(await decodeToPixels(smear))).detections;
    server = await createServer({ model: detector, port: 0, logger: false, viewerDir });
    url = await server.listen();
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
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
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await detector?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  async function openAndDetect(pageUrl: string) {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.bmcViewer?.ready !== undefined);
    await page.evaluate(() => window.bmcViewer.ready);
    await page.setInputFiles('#image-file', smear);
    await page.waitForFunction(() => window.bmcViewer.json() !== undefined, null, { timeout: 60_000 });
    const json = (await page.evaluate(() => window.bmcViewer.json()))!;
    return { page, json, errors };
  }

  it('detects the same cells as the Node pipeline (threads, cross-origin isolated); downloads JSON; screenshot', async () => {
    const requests: string[] = [];
    const { page, json, errors } = await openAndDetect(`${url}/`);
    page.on('request', (r) => requests.push(r.url()));
    expect(errors).toEqual([]);
    const info = await page.evaluate(() => ({
      threads: window.bmcViewer.threads,
      isolated: window.bmcViewer.crossOriginIsolated,
    }));
    expect(info.isolated).toBe(true);
    expect(info.threads).toBeGreaterThan(1);

    expect(nodeResult.length).toBeGreaterThan(10);
    expect(json.count).toBe(nodeResult.length);
    expect(json.detections.map((d) => d.classId)).toEqual(nodeResult.map((d) => d.classId));
    const boxDiff = maxBoxDiff(json.detections, nodeResult);
    const scoreDiff = Math.max(...json.detections.map((d, i) => Math.abs(d.score - nodeResult[i]!.score)));
    expect(boxDiff).toBeLessThan(1e-3);
    expect(scoreDiff).toBeLessThan(1e-4);
    console.log(
      `browser vs node: ${json.count} detections, max box diff ${boxDiff.toExponential(2)} px, max score diff ${scoreDiff.toExponential(2)}`,
    );

    // The download is the same JSON the page shows, and nothing was uploaded.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const downloaded = JSON.parse(await readFile((await download.path())!, 'utf8')) as DetectionJson;
    expect(downloaded.count).toBe(json.count);
    expect(downloaded.image.name).toBe('smear.png');
    expect(requests.filter((r) => r.includes('/v1/detect'))).toEqual([]);

    // Raising the threshold filters the list and the counts.
    await page.locator('#threshold').fill('0.8');
    const above = json.detections.filter((d) => d.score >= 0.8).length;
    expect(await page.locator('#cells li').count()).toBe(above);

    await page.locator('#threshold').fill(String(json.detections.length ? 0.6 : 0.5));
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'viewer.png') });

    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push((await page.evaluate(() => window.bmcViewer.rerun()))!);
    await page.close();

    const single = await openAndDetect(`${url}/?threads=1`);
    expect(await single.page.evaluate(() => window.bmcViewer.threads)).toBe(1);
    expect(single.json.count).toBe(nodeResult.length);
    expect(maxBoxDiff(single.json.detections, nodeResult)).toBeLessThan(1e-3);
    const times1: number[] = [];
    for (let i = 0; i < 5; i++) times1.push((await single.page.evaluate(() => window.bmcViewer.rerun()))!);
    await single.page.close();
    const median = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1]!;
    console.log(
      `browser detect 512x384 (tiny model): ${info.threads} threads ${median(times).toFixed(1)} ms, 1 thread ${median(times1).toFixed(1)} ms (median of 5)`,
    );
  });

  it("starts the slider at the model's operating point and counts at it", async () => {
    // Halfway between two candidate scores in the middle of the list: some cells above, some below.
    const scores = nodeResult.map((d) => d.score);
    let k = scores.length >> 1;
    while (k + 1 < scores.length && scores[k]! - scores[k + 1]! < 2e-3) k++;
    const op = (scores[k]! + scores[k + 1]!) / 2;
    const model = await withOperatingPoint(TINY_MODEL, join(dir, 'with-op.onnx'), {
      scoreThreshold: op,
      precision: 0.9,
      recall: 0.8,
      f1: 0.85,
      iou: 0.5,
      split: 'val',
      step: 10,
    });
    const s = await createServer({ model, port: 0, logger: false, viewerDir, threads: 1 });
    try {
      const { page, json, errors } = await openAndDetect(`${await s.listen()}/?threads=1`);
      expect(errors).toEqual([]);
      expect(Number(await page.locator('#threshold').inputValue())).toBeCloseTo(op, 3);
      expect(await page.locator('#threshold-value').textContent()).toBe(op.toFixed(3));
      const above = nodeResult.filter((d) => d.score >= op).length;
      expect(above).toBeGreaterThan(0);
      expect(above).toBeLessThan(nodeResult.length);
      expect(json.count).toBe(above);
      expect(await page.locator('#cells li').count()).toBe(above);
      await page.close();
    } finally {
      await s.close();
    }
  });

  it('works as a static build without the service: the user picks the model file', async () => {
    // A bare static server (no /v1 routes) with the isolation headers a static host would set.
    const types: Record<string, string> = {
      '.html': 'text/html',
      '.js': 'text/javascript',
      '.css': 'text/css',
      '.wasm': 'application/wasm',
    };
    const http: Server = createHttpServer(async (req, res) => {
      const path = normalize(
        join(viewerDir, (req.url ?? '/').split('?')[0] === '/' ? 'index.html' : req.url!.split('?')[0]!),
      );
      if (!path.startsWith(viewerDir) || !existsSync(path)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        'Content-Type': types[extname(path)] ?? 'application/octet-stream',
        'Cross-Origin-Opener-Policy': 'same-origin',
        'Cross-Origin-Embedder-Policy': 'require-corp',
      });
      res.end(await readFile(path));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as { port: number }).port;
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForFunction(() => window.bmcViewer?.ready !== undefined);
      await page.evaluate(() => window.bmcViewer.ready);
      expect(await page.locator('#model-pick').isVisible()).toBe(true);
      await page.setInputFiles('#model-file', TINY_MODEL);
      await page.waitForFunction(() => document.getElementById('status')?.textContent?.includes('ready'));
      await page.setInputFiles('#image-file', smear);
      await page.waitForFunction(() => window.bmcViewer.json() !== undefined, null, { timeout: 60_000 });
      const json = (await page.evaluate(() => window.bmcViewer.json()))!;
      expect(json.count).toBe(nodeResult.length);
      // A file that is not an image: a readable message, no crash.
      const bad = join(dir, 'bad.png');
      await writeFile(bad, 'not an image');
      await page.setInputFiles('#image-file', bad);
      await page.waitForFunction(() => document.getElementById('status')?.classList.contains('error'));
      expect(await page.locator('#status').textContent()).toMatch(/bad\.png: cannot read this image/);
      await page.close();
    } finally {
      await new Promise((r) => http.close(r));
    }
  });
});
