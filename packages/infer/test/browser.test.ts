import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { writeSmearSlide } from '@bmc/data';
import { redisServerPath, startRedis } from '@bmc/test-utils/redis';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeToPixels } from '../src/image.js';
import { type Detector, loadDetector } from '../src/model.js';
import type { DetectionJson } from '../src/pipeline/results.js';
import { createServer, type InferServer } from '../src/server.js';
import { maxBoxDiff, PACKAGE_ROOT, TINY_MODEL, writeFinishedSlideJob, writeSmear } from './helpers.js';
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
    bmcSlide: {
      ready: Promise<void>;
      cells(): number;
      drawn(): number;
      tilesLoaded(): number;
      zoomTo(x: number, y: number, w: number, h: number): void;
      view(): { x: number; y: number; width: number; height: number } | undefined;
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

  it.skipIf(redisServerPath() === undefined)(
    'opens a slide job in the deep-zoom viewer: tiles from the service, every detected cell on the overlay',
    async () => {
      const redis = await startRedis();
      if (!redis) throw new Error('redis-server did not start');
      // 3000 x 2000 of glass with two smear fields; a finished job of the service with its pyramid.
      const slide = join(dir, 'slide.tif');
      await writeSmearSlide(slide, {
        seed: 3,
        width: 3000,
        height: 2000,
        fields: [
          [224, 448],
          [1344, 896],
        ],
      });
      const id = 'a1'.repeat(16);
      const jobs = join(dir, 'jobs');
      const { summary, dir: jobDir } = await writeFinishedSlideJob(jobs, id, slide, TINY_MODEL);
      const geo = JSON.parse(await readFile(join(jobDir, 'slides', 'slide.geojson'), 'utf8')) as {
        features: Array<{
          geometry: { coordinates: number[][][] };
          properties: { classification: { color: [number, number, number] } };
        }>;
      };
      const colours = geo.features.map((f) => f.properties.classification.color);
      const boxes = geo.features.map((f) => [
        ...f.geometry.coordinates[0]![0]!,
        ...f.geometry.coordinates[0]![2]!,
      ]);
      expect(boxes.length).toBe(summary.count);
      expect(boxes.length).toBeGreaterThan(5);
      const s = await createServer({
        model: detector,
        port: 0,
        logger: false,
        viewerDir,
        threads: 1,
        jobs: { url: redis.url, dir: jobs, slideRoot: dir, maxUploadBytes: 1 << 20, deepZoom: true },
      });
      try {
        const base = await s.listen();
        const job = await (await fetch(`${base}/v1/jobs/${id}`)).json();
        expect(job.links.viewer).toBe(`/slide.html#${id}`);
        const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
        const errors: string[] = [];
        const requests: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        page.on('request', (r) => requests.push(r.url()));
        // From the slide-jobs page, as a user gets there: the finished job links to the viewer.
        await page.goto(`${base}/jobs#${id}`);
        await page.click('#open-viewer');
        await page.waitForURL(`${base}${job.links.viewer}`);
        await page.waitForFunction(() => window.bmcSlide?.ready !== undefined);
        await page.evaluate(() => window.bmcSlide.ready);
        await page.waitForFunction(() => window.bmcSlide.tilesLoaded() > 0, null, { timeout: 30_000 });
        expect(errors).toEqual([]);
        expect(await page.locator('#status.error').count()).toBe(0);
        // The whole slide on screen: every cell of the job's GeoJSON is drawn.
        expect(await page.evaluate(() => window.bmcSlide.cells())).toBe(summary.count);
        expect(await page.evaluate(() => window.bmcSlide.drawn())).toBe(summary.count);
        // Counts beside it: one row per class plus the total.
        const total = page.locator('#counts tr').last();
        expect(await total.textContent()).toBe(`total${summary.count}`);
        await page.screenshot({ path: join(ARTIFACTS, 'slide-viewer.png') });

        // Zoomed into the first field (both classes there): the cells drawn are those in view (boxes inside it at
        // least, boxes touching it at most).
        await page.evaluate(() => window.bmcSlide.zoomTo(280, 504, 208, 208));
        await page.waitForFunction(() => window.bmcSlide.drawn() < window.bmcSlide.cells());
        await page.waitForTimeout(200);
        const v = (await page.evaluate(() => window.bmcSlide.view()))!;
        const inside = boxes.filter(
          ([x1, y1, x2, y2]) => x1! >= v.x && y1! >= v.y && x2! <= v.x + v.width && y2! <= v.y + v.height,
        ).length;
        const touching = boxes.filter(
          ([x1, y1, x2, y2]) => x2! >= v.x && y2! >= v.y && x1! <= v.x + v.width && y1! <= v.y + v.height,
        ).length;
        const drawn = await page.evaluate(() => window.bmcSlide.drawn());
        expect(inside).toBeGreaterThan(0);
        // And where they should be, in their class's colour (the GeoJSON's, as QuPath shows it):
        // the overlay has that colour on each in-view box's left and top edges, placed from the
        // view rectangle (slide pixels) and the canvas size alone. Where another box's outline
        // passes within 3 canvas px (the model found both classes on one cell), its colour counts too.
        const canvasWidth = await page.evaluate(
          () => (document.getElementById('cells-overlay') as HTMLCanvasElement).width,
        );
        const near = 3 / (canvasWidth / v.width); // slide px
        const onOutline = (x: number, y: number, [x1, y1, x2, y2]: number[]) =>
          (y >= y1! - near && y <= y2! + near && (Math.abs(x - x1!) <= near || Math.abs(x - x2!) <= near)) ||
          (x >= x1! - near && x <= x2! + near && (Math.abs(y - y1!) <= near || Math.abs(y - y2!) <= near));
        const edges = boxes
          .filter(
            ([x1, y1, x2, y2]) => x1! >= v.x && y1! >= v.y && x2! <= v.x + v.width && y2! <= v.y + v.height,
          )
          .flatMap(([x1, y1, x2, y2]) => [
            [x1!, (y1! + y2!) / 2],
            [(x1! + x2!) / 2, y1!],
          ])
          .map(([x, y]) => ({
            x: x!,
            y: y!,
            rgbs: [
              ...new Set(boxes.flatMap((b, k) => (onOutline(x!, y!, b) ? [colours[k]!.join()] : []))),
            ].map((c) => c.split(',').map(Number)),
          }));
        expect(new Set(colours.map((c) => c.join()))).toHaveProperty('size', 2); // both classes drawn
        const inked = await page.evaluate(
          ({ edges, v }) => {
            const c = document.getElementById('cells-overlay') as HTMLCanvasElement;
            const ctx = c.getContext('2d')!;
            const k = c.width / v.width;
            return edges.map(({ x, y, rgbs }) => {
              const px = Math.round((x - v.x) * k);
              const py = Math.round((y - v.y) * k);
              const a = ctx.getImageData(px - 2, py - 2, 5, 5).data;
              for (let i = 0; i < a.length; i += 4)
                for (const [r, g, b] of rgbs)
                  if (
                    a[i + 3]! > 100 &&
                    Math.abs(a[i]! - r!) < 40 &&
                    Math.abs(a[i + 1]! - g!) < 40 &&
                    Math.abs(a[i + 2]! - b!) < 40
                  )
                    return true;
              return false;
            });
          },
          { edges, v },
        );
        expect(inked.filter((x) => !x)).toEqual([]);
        expect(drawn).toBeGreaterThanOrEqual(inside);
        expect(drawn).toBeLessThanOrEqual(touching);
        // Full-resolution tiles of that field came from the job's pyramid.
        await page.waitForFunction(() => window.bmcSlide.tilesLoaded() > 2);
        expect(requests.some((r) => r.includes(`/v1/jobs/${id}/slide_files/12/`))).toBe(true);
        await page.screenshot({ path: join(ARTIFACTS, 'slide-viewer-zoomed.png') });
        // Nothing from anywhere but the service (no CDN): the slide stays in the hospital.
        expect(requests.filter((r) => !r.startsWith(base))).toEqual([]);
        console.log(
          `deep-zoom viewer: ${summary.count} cells drawn over the whole slide, ${drawn} in view zoomed into a field (${inside}-${touching} expected); ${requests.filter((r) => r.includes('slide_files')).length} tile requests`,
        );
        await page.close();
      } finally {
        await s.close();
        await redis.stop();
      }
    },
  );
});
