import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { boxIou } from '@bmc/core';
import { type CalibrationInput, quantizeOnnx } from '@bmc/export';
import { readBmcMetadata } from '@bmc/export/metadata';
import * as ort from 'onnxruntime-node';
import * as ortWeb from 'onnxruntime-web';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeToPixels } from '../src/image.js';
import { detectPixels } from '../src/pipeline/detect.js';
import { ortRunner } from '../src/pipeline/ort-runner.js';
import { anchorsFor } from '../src/pipeline/postprocess.js';

// The shipped blood-smear detector quantised to INT8 (@bmc/export's quantizeOnnx, what
// `bmc export --int8` runs), then run through the same detectPixels by onnxruntime-node (bmc
// detect, bmc serve) and onnxruntime-web's wasm backend (the viewer), on real TXL-PBC smears.
const REPO = new URL('../../../', import.meta.url).pathname;
const SHIPPED = join(REPO, 'packages/models/models/blood-smear/model.onnx');
const TXL = join(REPO, '../shared/data/txl-pbc/images');
const ready = existsSync(SHIPPED) && existsSync(join(TXL, 'train'));

const spread = (dir: string, n: number) => {
  const all = readdirSync(dir).sort();
  return Array.from({ length: n }, (_, i) => join(dir, all[Math.floor((i * all.length) / n)]!));
};

/** IoU of two xyxy boxes (@bmc/core's torchvision-equal `boxIou`). */
const iou = (a: readonly number[], b: readonly number[]) => boxIou(a, b).data[0]!;

describe.skipIf(!ready)('INT8 blood-smear model in onnxruntime-node and onnxruntime-web', () => {
  let int8: Uint8Array;
  beforeAll(async () => {
    const float = readFileSync(SHIPPED);
    const meta = readBmcMetadata(float);
    const inputs: CalibrationInput[] = [];
    for (const file of spread(join(TXL, 'train'), 8)) {
      // Capture the network inputs detectPixels prepares (what bmc export --int8 does).
      await detectPixels(
        async (input, height, width) => {
          inputs.push({ data: input.slice(), dims: [1, 3, height, width] });
          const a = anchorsFor(meta, height, width).levelCounts.reduce((s, n) => s + n, 0);
          return {
            clsLogits: new Float32Array(a * meta.classNames.length).fill(-100),
            boxDeltas: new Float32Array(a * 4),
            iouLogits: new Float32Array(a).fill(-100),
          };
        },
        meta,
        await decodeToPixels(file),
      );
    }
    int8 = (await quantizeOnnx(float, inputs, { calibration: { images: 8, source: 'train' } })).bytes;
  }, 240_000);

  it('finds the same cells in both runtimes', async () => {
    const meta = readBmcMetadata(int8);
    ortWeb.env.wasm.numThreads = 1;
    const node = ortRunner(await ort.InferenceSession.create(int8), meta, ort.Tensor);
    const web = ortRunner(
      await ortWeb.InferenceSession.create(int8, { executionProviders: ['wasm'] }),
      meta,
      ortWeb.Tensor,
    );
    const threshold = meta.operatingPoint!.scoreThreshold;
    const ious: number[] = [];
    let countDiff = 0;
    let count = 0;
    let maxScoreDiff = 0;
    for (const file of spread(join(TXL, 'test'), 4)) {
      const px = await decodeToPixels(file);
      const a = (await detectPixels(node, meta, px)).detections.filter((d) => d.score >= threshold);
      const b = (await detectPixels(web, meta, px)).detections;
      for (const d of a) {
        let best = 0;
        let score = 0;
        for (const e of b) {
          const v = iou(d.box, e.box);
          if (v > best) [best, score] = [v, e.score];
        }
        ious.push(best);
        if (best > 0.9) maxScoreDiff = Math.max(maxScoreDiff, Math.abs(score - d.score));
      }
      count += a.length;
      countDiff += Math.abs(a.length - b.filter((d) => d.score >= threshold).length);
    }
    ious.sort((x, y) => x - y);
    const same = ious.filter((v) => v >= 0.99).length / ious.length;
    console.log(
      `INT8 node vs web: ${ious.length} cells, ${(100 * same).toFixed(1)}% at IoU >= 0.99, min IoU ${ious[0]!.toFixed(3)}, ` +
        `max score diff ${maxScoreDiff.toFixed(4)}, counts differ by ${countDiff} of ${count}`,
    );
    expect(ious.length).toBeGreaterThan(50);
    // Integer arithmetic is exact in both, but the runtimes' requantisation (VNNI kernels in node,
    // wasm's) may round a value a step apart: one uint8 step of a box delta moves a side by a pixel
    // or two. One run gave identical boxes, later ones 91% at IoU >= 0.99 (min 0.986, CI and here): every cell must
    // be found at IoU >= 0.95, most of them the same box.
    expect(ious[0]!).toBeGreaterThanOrEqual(0.95);
    expect(ious[ious.length >> 1]!).toBeGreaterThanOrEqual(0.99);
    expect(maxScoreDiff).toBeLessThan(0.01);
    expect(countDiff).toBeLessThanOrEqual(2);
  }, 240_000);
});
