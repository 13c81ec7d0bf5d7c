import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type BmcMetadata,
  detectorMetadata,
  exportDetectorOnnx,
  readBmcMetadata,
  readOnnxMetadataProps,
} from '../src/index.js';
import { initTf } from './helpers.js';

/** A one-level detector-shaped model: 9 anchors, 1 class. */
function tinyDetector(): tf.LayersModel {
  const x = tf.input({ shape: [null, null, 3] as unknown as number[] });
  const f = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, strides: 8, padding: 'same' })
    .apply(x) as tf.SymbolicTensor;
  const head = (k: number) =>
    tf.layers
      .reshape({ targetShape: [-1, k] })
      .apply(
        tf.layers.conv2d({ filters: 9 * k, kernelSize: 3, padding: 'same' }).apply(f),
      ) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: [head(1), head(4), head(1)] });
}

const config = {
  inputSize: [256, 256] as const,
  anchors: { levels: [{ stride: 8, sizes: [32] }], aspectRatios: [1] },
  neck: { levels: [3] },
  head: { numClasses: 1, iouBranch: true },
  postprocess: {},
};

describe('pixel scale metadata (bmc.pixel_scale)', () => {
  beforeAll(initTf);

  it('round-trips both modes as a JSON entry of its own', () => {
    const model = tinyDetector();
    for (const pixelScale of [
      { mode: 'native', crop: 640 },
      { mode: 'letterbox', longSide: 320 },
    ] as const) {
      const { bytes } = exportDetectorOnnx(model, detectorMetadata(config, { pixelScale }));
      expect(JSON.parse(readOnnxMetadataProps(bytes)['bmc.pixel_scale']!)).toEqual(pixelScale);
      expect(readBmcMetadata(bytes).pixelScale).toEqual(pixelScale);
    }
    model.dispose();
  });

  it('reads a file written without one (older bmc) with no pixelScale, everything else intact', () => {
    const model = tinyDetector();
    const { bytes } = exportDetectorOnnx(model, detectorMetadata(config));
    expect(readOnnxMetadataProps(bytes)['bmc.pixel_scale']).toBeUndefined();
    const m = readBmcMetadata(bytes);
    expect(m.pixelScale).toBeUndefined();
    expect(m.input.trainSize).toEqual([256, 256]);
    model.dispose();
  });

  it('refuses a malformed scale, naming the entry and the value', () => {
    const model = tinyDetector();
    const bad = (pixelScale: unknown) => () =>
      exportDetectorOnnx(
        model,
        detectorMetadata(config, { pixelScale: pixelScale as BmcMetadata['pixelScale'] }),
      );
    expect(bad({ mode: 'native', crop: 0 })).toThrow(
      /'bmc\.pixel_scale' must be \{mode: 'native', crop\} or \{mode: 'letterbox', longSide\}.*"crop":0/,
    );
    expect(bad({ mode: 'letterbox', crop: 320 })).toThrow(/'bmc\.pixel_scale' must be/);
    expect(bad({ mode: 'physical', micronsPerPixel: 0.1 })).toThrow(/'bmc\.pixel_scale' must be/);
    model.dispose();
  });
});
