import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DifferentialCount } from '@bmc/classify';
import * as tf from '@tensorflow/tfjs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CellClassifier, loadCellClassifier } from '../src/cell-classifier.js';
import { decodeToPixels } from '../src/image.js';
import type { DetectionJson } from '../src/pipeline/results.js';
import { createServer, type InferServer } from '../src/server.js';
import { writeUntrainedClassifier } from './classifier-fixture.js';
import { PACKAGE_ROOT, TINY_MODEL, writeSmear } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
type Typed = Omit<DetectionJson, 'detections'> & {
  detections: (DetectionJson['detections'][number] & { cellType: string; cellTypeProbability: number })[];
  differential: DifferentialCount;
};
interface Viewer {
  ready: Promise<void>;
  json(): Typed | undefined;
  differential(): DifferentialCount | undefined;
}

// The second stage in the browser: the served viewer fetches /v1/classifier.onnx, types every cell in
// the page with the code bmc detect / bmc serve use (pipeline/cell-types.ts) and shows the
// differential. The classifier here is untrained (seeded weights); its threshold is set at the median
// of its probabilities on the test image, so both typed and unclassified cells occur.
describe.skipIf(!existsSync(CHROMIUM))('viewer with a cell-type classifier (Chromium)', () => {
  let dir: string;
  let server: InferServer;
  let classifier: CellClassifier;
  let url: string;
  let browser: Browser;
  let smear: string;
  let THRESHOLD = 0.5;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bmc-viewer-classifier-'));
    const viewerDir = join(dir, 'viewer');
    const { build } = await import('vite');
    await build({
      configFile: join(PACKAGE_ROOT, 'vite.config.ts'),
      logLevel: 'error',
      build: { outDir: viewerDir, emptyOutDir: true },
    });
    await tf.setBackend('cpu');
    const onnx = join(dir, 'cls.onnx');
    await writeUntrainedClassifier(onnx, ['blast', 'lymphocyte', 'platelet']);
    smear = await writeSmear(dir, 'smear.png', 21, 512, 384);
    const probe = await loadCellClassifier(onnx, 0, 1);
    const { loadDetector } = await import('../src/model.js');
    const detector = await loadDetector(TINY_MODEL, { threads: 1 });
    const pixels = await decodeToPixels(smear);
    const probs = (
      await probe.classify(
        pixels,
        (await detector.detect(pixels)).detections.map((d) => d.box),
      )
    )
      .map((c) => c.probability)
      .sort((a, b) => a - b);
    THRESHOLD = probs[probs.length >> 1]!;
    await Promise.all([probe.dispose(), detector.dispose()]);
    classifier = await loadCellClassifier(onnx, THRESHOLD, 1);
    server = await createServer({ model: TINY_MODEL, classifier, port: 0, logger: false, viewerDir });
    url = await server.listen();
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await classifier?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('types every shown cell as the service does and shows the differential table', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${url}/`);
    await page.waitForFunction(
      () => (window as unknown as { bmcViewer?: Viewer }).bmcViewer?.ready !== undefined,
    );
    await page.evaluate(() => (window as unknown as { bmcViewer: Viewer }).bmcViewer.ready);
    await page.setInputFiles('#image-file', smear);
    await page.waitForFunction(
      () => (window as unknown as { bmcViewer: Viewer }).bmcViewer.differential() !== undefined,
      null,
      {
        timeout: 60_000,
      },
    );
    const json = (await page.evaluate(() => (window as unknown as { bmcViewer: Viewer }).bmcViewer.json()))!;
    expect(errors).toEqual([]);
    expect(json.count).toBeGreaterThan(5);

    // The same image through the service (Node, onnxruntime-node).
    const served = (await (
      await fetch(`${url}/v1/detect`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: await import('node:fs/promises').then((f) => f.readFile(smear)),
      })
    ).json()) as Typed;
    expect(json.count).toBe(served.count);
    const pDiff = Math.max(
      ...json.detections.map((d, i) =>
        Math.abs(d.cellTypeProbability - served.detections[i]!.cellTypeProbability),
      ),
    );
    expect(pDiff).toBeLessThan(1e-3);
    json.detections.forEach((d, i) => {
      // A probability within float noise of the threshold may fall either side.
      if (Math.abs(d.cellTypeProbability - THRESHOLD) > 1e-3)
        expect(d.cellType).toBe(served.detections[i]!.cellType);
    });
    // And through loadCellClassifier directly on the page's boxes (independent of the service's path).
    const direct = await classifier.classify(
      await decodeToPixels(smear),
      json.detections.map((d) => d.box),
    );
    expect(
      Math.max(...direct.map((c, i) => Math.abs(c.probability - json.detections[i]!.cellTypeProbability))),
    ).toBeLessThan(1e-3);

    // Both kinds of call occur, platelets are left out of the differential, and it adds up.
    const types = new Set(json.detections.map((d) => d.cellType));
    expect(types.has('unclassified')).toBe(true);
    expect(types.size).toBeGreaterThan(1);
    const diff = json.differential;
    expect(diff.rows.map((r) => r.type)).toEqual(['blast', 'lymphocyte', 'unclassified']);
    const platelets = json.detections.filter((d) => d.cellType === 'platelet').length;
    expect(diff.total).toBe(json.count - platelets);
    expect(diff.rows.reduce((a, r) => a + r.count, 0)).toBe(diff.total);

    // The table on the page: one row per type plus the total, with the same counts.
    const cells = await page.locator('#differential tr').allTextContents();
    expect(cells).toHaveLength(diff.rows.length + 1);
    expect(cells.at(-1)).toContain(String(diff.total));
    expect(await page.locator('#differential-section').isVisible()).toBe(true);
    await page.close();
  });
});
