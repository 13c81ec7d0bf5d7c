import type { BmcMetadata, PixelScale } from '@bmc/export/metadata';
import { describe, expect, it } from 'vitest';
import { detectPixels } from '../src/pipeline/detect.js';
import { applyPixelScale } from '../src/pipeline/scale.js';
import type { NetworkRunner, RawPixels } from '../src/pipeline/types.js';

/** One level of stride 32, one anchor per cell: A = (H / 32) * (W / 32). */
function metaWith(pixelScale?: PixelScale): BmcMetadata {
  return {
    version: 'test',
    classNames: ['cell'],
    anchors: { levels: [{ stride: 32, sizes: [64] }], aspectRatios: [1] },
    boxCoder: { weights: [1, 1, 1, 1], clip: Math.log(1000 / 16) },
    input: {
      name: 'images',
      layout: 'NCHW',
      channelOrder: 'RGB',
      sizeMultiple: 32,
      trainSize: [320, 320],
      normalization: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
    },
    outputs: { clsLogits: 'cls_logits', boxDeltas: 'box_deltas' },
    scoreMode: 'cls',
    nms: { scoreThreshold: 0.05, topK: 1000, nmsThreshold: 0.5, maxDetections: 100, classAgnostic: false },
    ...(pixelScale ? { pixelScale } : {}),
  };
}

/** A network that finds nothing and records the input sizes it was given. */
function recordingRunner(): { run: NetworkRunner; sizes: Array<[number, number]> } {
  const sizes: Array<[number, number]> = [];
  const run: NetworkRunner = async (_input, h, w) => {
    sizes.push([w, h]);
    const a = (h / 32) * (w / 32);
    return { clsLogits: new Float32Array(a).fill(-20), boxDeltas: new Float32Array(4 * a) };
  };
  return { run, sizes };
}

const image = (width: number, height: number): RawPixels => ({
  data: new Uint8Array(width * height * 3),
  width,
  height,
  channels: 3,
});

describe('applyPixelScale', () => {
  it('a letterbox model resizes to its training side and tiles only above 1024', () => {
    const a = applyPixelScale(metaWith({ mode: 'letterbox', longSide: 320 }));
    expect(a).toMatchObject({ resizeLongSide: 320, tileSize: 1024, tileOverlap: 128, source: 'model' });
    expect(a.description).toBe(
      'pixel scale: longer side resized to 320 px, tiled above 1024 px (overlap 128) (the model was trained on images resized to 320 px (longer side))',
    );
  });

  it('a native model runs at source resolution in tiles of its crop, overlap a quarter of small tiles', () => {
    expect(applyPixelScale(metaWith({ mode: 'native', crop: 256 }))).toMatchObject({
      resizeLongSide: 0,
      tileSize: 256,
      tileOverlap: 64,
      source: 'model',
    });
    const big = applyPixelScale(metaWith({ mode: 'native', crop: 640 }));
    expect([big.tileSize, big.tileOverlap]).toEqual([640, 128]);
    expect(big.description).toMatch(/^pixel scale: source resolution, tiled above 640 px .*640 px crops/);
  });

  it('explicit settings override the model, and say so', () => {
    const a = applyPixelScale(metaWith({ mode: 'letterbox', longSide: 320 }), { resizeLongSide: 0 });
    expect(a).toMatchObject({ resizeLongSide: 0, source: 'override' });
    expect(a.description).toMatch(/source resolution.*explicit resize/);
    const b = applyPixelScale(metaWith({ mode: 'native', crop: 256 }), { resizeLongSide: 800, tileSize: 0 });
    expect(b).toMatchObject({ resizeLongSide: 800, tileSize: 0, source: 'override' });
  });

  it('a model without a recorded scale keeps the old behaviour and says how to get the training scale', () => {
    const a = applyPixelScale(metaWith());
    expect(a).toMatchObject({ resizeLongSide: 0, tileSize: 1024, tileOverlap: 128, source: 'unrecorded' });
    expect(a.description).toMatch(/records no pixel scale.*trained at 320 px.*resize to 320/);
  });
});

describe('detectPixels applies the recorded scale by default', () => {
  it('letterbox 320: a 640x480 image reaches the network as 320x240, padded to 320x256', async () => {
    const r = recordingRunner();
    await detectPixels(r.run, metaWith({ mode: 'letterbox', longSide: 320 }), image(640, 480));
    expect(r.sizes).toEqual([[320, 256]]);
  });

  it('native 256: a 640x480 image runs at source resolution in 256 px tiles (3 x 3, steps of 192)', async () => {
    const r = recordingRunner();
    const res = await detectPixels(r.run, metaWith({ mode: 'native', crop: 256 }), image(640, 480));
    expect(res.tiles).toBe(9);
    // Tile starts 0, 192, 384 on both axes; the last column is 640 - 384 = 256 wide, the last row 480 - 384 = 96 high.
    expect(r.sizes).toEqual([
      [256, 256],
      [256, 256],
      [256, 256],
      [256, 256],
      [256, 256],
      [256, 256],
      [256, 96],
      [256, 96],
      [256, 96],
    ]);
  });

  it('unrecorded: source resolution, whole (as before); an explicit resize still applies', async () => {
    const r = recordingRunner();
    await detectPixels(r.run, metaWith(), image(640, 480));
    await detectPixels(r.run, metaWith(), image(640, 480), { resizeLongSide: 320 });
    await detectPixels(r.run, metaWith({ mode: 'letterbox', longSide: 320 }), image(640, 480), {
      resizeLongSide: 0,
    });
    expect(r.sizes).toEqual([
      [640, 480],
      [320, 256],
      [640, 480],
    ]);
  });
});

describe('bmc serve reports the scale it applies', () => {
  it('GET /v1/model: the model without a recorded scale runs as before; an explicit resize says so', async () => {
    const { createServer } = await import('../src/server.js');
    const { TINY_MODEL } = await import('./helpers.js');
    const plain = await createServer({ model: TINY_MODEL, port: 0, logger: false, viewer: false });
    const m = (await plain.app.inject({ method: 'GET', url: '/v1/model' })).json();
    expect(m.pixelScale).toMatchObject({ resizeLongSide: 0, tileSize: 1024, source: 'unrecorded' });
    expect(m.pixelScale.description).toMatch(/records no pixel scale/);
    await plain.close();
    const resized = await createServer({
      model: TINY_MODEL,
      port: 0,
      logger: false,
      viewer: false,
      detect: { resizeLongSide: 512 },
    });
    expect(resized.pixelScale).toMatchObject({ resizeLongSide: 512, source: 'override' });
    await resized.close();
  });
});
