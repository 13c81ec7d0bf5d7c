import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DifferentialCount } from '@bmc/classify';
import * as tf from '@tensorflow/tfjs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CellClassifier, loadCellClassifier } from '../src/cell-classifier.js';
import { decodeToPixels } from '../src/image.js';
import type { DetectionJson } from '../src/pipeline/results.js';
import { createServer } from '../src/server.js';
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
// differential. Both classifier architectures `bmc classify train` builds, exported as
// `bmc classify export` does: the ResNet and the ViT (LayerNormalization, MatMul, Erf GELU,
// Softmax in its graph). The classifiers are untrained (seeded weights); each one's threshold is set
// at the median of its probabilities on the test image, so both typed and unclassified cells occur.
describe.skipIf(!existsSync(CHROMIUM))('viewer with a cell-type classifier (Chromium)', () => {
  let dir: string;
  let viewerDir: string;
  let browser: Browser;
  let smear: string;
  let detections: [number, number, number, number][];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bmc-viewer-classifier-'));
    viewerDir = join(dir, 'viewer');
    const { build } = await import('vite');
    await build({
      configFile: join(PACKAGE_ROOT, 'vite.config.ts'),
      logLevel: 'error',
      build: { outDir: viewerDir, emptyOutDir: true },
    });
    await tf.setBackend('cpu');
    smear = await writeSmear(dir, 'smear.png', 21, 512, 384);
    const { loadDetector } = await import('../src/model.js');
    const detector = await loadDetector(TINY_MODEL, { threads: 1 });
    detections = (await detector.detect(await decodeToPixels(smear))).detections.map((d) => d.box);
    await detector.dispose();
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['resnet', 'vit'] as const)(
    '%s: types every shown cell as the service does and shows the differential table',
    async (arch) => {
      const onnx = join(dir, `${arch}.onnx`);
      await writeUntrainedClassifier(onnx, ['blast', 'lymphocyte', 'platelet'], arch);
      if (arch === 'vit') {
        // The transformer's op kinds are in the graph the page runs.
        const graph = (await readFile(onnx)).toString('latin1');
        for (const op of ['LayerNormalization', 'MatMul', 'Erf', 'Softmax']) expect(graph).toContain(op);
      }
      const probe = await loadCellClassifier(onnx, 0, 1);
      const probs = (await probe.classify(await decodeToPixels(smear), detections))
        .map((c) => c.probability)
        .sort((a, b) => a - b);
      await probe.dispose();
      const THRESHOLD = probs[probs.length >> 1]!;
      const classifier = await loadCellClassifier(onnx, THRESHOLD, 1);
      const server = await createServer({ model: TINY_MODEL, classifier, port: 0, logger: false, viewerDir });
      try {
        await checkViewer(await server.listen(), classifier, THRESHOLD);
      } finally {
        await server.close();
        await classifier.dispose();
      }
    },
    120_000,
  );

  it('a file that is not a cell classifier leaves the page detecting, with the reason in the status line', async () => {
    const server = await createServer({ model: TINY_MODEL, port: 0, logger: false, viewerDir });
    try {
      const page = await browser.newPage();
      // The detector itself: an ONNX model, but without the classifier's metadata.
      await page.goto(`${await server.listen()}/?classifier=./v1/model.onnx`);
      await page.waitForFunction(
        () => (window as unknown as { bmcViewer?: Viewer }).bmcViewer?.ready !== undefined,
      );
      await page.evaluate(() => (window as unknown as { bmcViewer: Viewer }).bmcViewer.ready);
      const status = page.locator('#status');
      const problem = /\.\/v1\/model\.onnx: not a usable cell classifier \(.+\); cell types are off\.$/;
      // After the model's own ready line, which loads at the same time and must not hide it.
      expect(await status.textContent()).toMatch(/^Model tiny-detector .* ready;/);
      expect(await status.textContent()).toMatch(problem);
      expect(await status.getAttribute('class')).toContain('error');
      expect(await page.locator('#differential-section').isVisible()).toBe(false);
      await page.setInputFiles('#image-file', smear);
      await page.waitForFunction(
        () => ((window as unknown as { bmcViewer: Viewer }).bmcViewer.json()?.count ?? 0) > 0,
        null,
        { timeout: 60_000 },
      );
      expect(await status.textContent()).toMatch(problem);
      expect(
        (await page.evaluate(() => (window as unknown as { bmcViewer: Viewer }).bmcViewer.json()))
          ?.differential,
      ).toBeUndefined();
      await page.close();
    } finally {
      await server.close();
    }
  }, 120_000);

  async function checkViewer(url: string, classifier: CellClassifier, THRESHOLD: number) {
    const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${url}/`);
    await page.waitForFunction(
      () => (window as unknown as { bmcViewer?: Viewer }).bmcViewer?.ready !== undefined,
    );
    await page.evaluate(() => (window as unknown as { bmcViewer: Viewer }).bmcViewer.ready);
    // A classifier the page could not load says so in the status line (and the test fails here).
    expect(
      await page.locator('#differential-section').isVisible(),
      (await page.locator('#status').textContent()) ?? '',
    ).toBe(true);
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
        body: await readFile(smear),
      })
    ).json()) as Typed;
    expect(json.count).toBe(served.count);
    const pDiff = Math.max(
      ...json.detections.map((d, i) =>
        Math.abs(d.cellTypeProbability - served.detections[i]!.cellTypeProbability),
      ),
    );
    expect(pDiff).toBeLessThan(1e-3);
    // The probabilities spread far wider than that tolerance, so the comparison tells cells apart.
    const ps = json.detections.map((d) => d.cellTypeProbability);
    expect(Math.max(...ps) - Math.min(...ps)).toBeGreaterThan(0.02);
    // A probability within float noise of the threshold may fall either side.
    const clear = json.detections.filter((d) => Math.abs(d.cellTypeProbability - THRESHOLD) > 1e-3);
    expect(clear.length).toBeGreaterThan(json.count / 2);
    json.detections.forEach((d, i) => {
      if (clear.includes(d)) expect(d.cellType).toBe(served.detections[i]!.cellType);
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
  }
});
