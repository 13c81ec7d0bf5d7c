import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  BMC_VERSION,
  BmcMetadataError,
  bmcMetadataProps,
  exportDetectorOnnx,
  exportOnnx,
  readBmcMetadata,
  readOnnxMetadataProps,
} from '../src/index.js';
import { initTf } from './helpers.js';

interface Fixture {
  onnxVersion: string;
  withBmc: { model: string; metadata: Record<string, unknown>; props: Record<string, string> };
  withoutBmc: { model: string };
  noProps: { model: string };
  brokenJson: { model: string };
}
// Written by tooling/fixtures/export_metadata.py with the onnx project's Python writer.
const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/onnx_metadata.json', import.meta.url), 'utf8'),
) as Fixture;
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));

const meta = {
  classNames: ['cell'],
  anchors: { levels: [{ stride: 8, sizes: [32, 40, 50] }], aspectRatios: [0.5, 1, 2] },
  boxCoder: { weights: [1, 1, 1, 1] as const, clip: Math.log(1000 / 16) },
  input: {
    sizeMultiple: 32,
    trainSize: [512, 512] as const,
    normalization: {
      scale: 1 / 255,
      mean: [0.485, 0.456, 0.406] as const,
      std: [0.229, 0.224, 0.225] as const,
    },
  },
  scoreMode: 'sqrt(cls*iou)' as const,
  nms: { scoreThreshold: 0.05, topK: 1000, nmsThreshold: 0.5, maxDetections: 100, classAgnostic: false },
  model: { preset: 'test' },
};

/** A one-level detector-shaped model: 9 anchors, 1 class. */
function tinyDetector(): tf.LayersModel {
  const x = tf.input({ shape: [null, null, 3] as unknown as number[] });
  const f = tf.layers
    .conv2d({ filters: 4, kernelSize: 3, strides: 8, padding: 'same' })
    .apply(x) as tf.SymbolicTensor;
  const head = (k: number, name: string) =>
    tf.layers
      .reshape({ targetShape: [-1, k], name })
      .apply(
        tf.layers.conv2d({ filters: 9 * k, kernelSize: 3, padding: 'same' }).apply(f),
      ) as tf.SymbolicTensor;
  return tf.model({ inputs: x, outputs: [head(1, 'cls_out'), head(4, 'box_out'), head(1, 'iou_out')] });
}

describe('bmc metadata', () => {
  beforeAll(initTf);

  it('reads metadata written by the onnx Python writer', () => {
    const m = readBmcMetadata(bytes(fixture.withBmc.model));
    expect(m).toEqual(fixture.withBmc.metadata);
    expect(readOnnxMetadataProps(bytes(fixture.withBmc.model))).toEqual(fixture.withBmc.props);
  });

  it('writes the same props the Python fixture spells out for the same metadata', () => {
    const { version, ...rest } = fixture.withBmc.metadata as { version: string };
    const props = bmcMetadataProps({
      version,
      ...(rest as Omit<Parameters<typeof bmcMetadataProps>[0], 'version'>),
    });
    const { author: _ignored, ...expected } = fixture.withBmc.props;
    expect(Object.keys(props).sort()).toEqual(Object.keys(expected).sort());
    for (const [k, v] of Object.entries(expected)) {
      // Python and JS format floats alike but space JSON differently: compare parsed values.
      if (k === 'bmc.format' || k === 'bmc.version') expect(props[k]).toBe(v);
      else expect(JSON.parse(props[k]!)).toEqual(JSON.parse(v));
    }
  });

  it('exportDetectorOnnx round-trips its metadata and names inputs/outputs for the app', () => {
    const model = tinyDetector();
    const { bytes: onnx, summary } = exportDetectorOnnx(model, meta);
    const read = readBmcMetadata(onnx, 'tiny.onnx');
    expect(read).toEqual({
      ...meta,
      version: BMC_VERSION,
      input: { name: 'images', layout: 'NCHW', channelOrder: 'RGB', ...meta.input },
      outputs: { clsLogits: 'cls_logits', boxDeltas: 'box_deltas', iouLogits: 'iou_logits' },
    });
    expect(summary.inputs).toEqual([{ name: 'images', shape: ['N', 3, 'H', 'W'] }]);
    expect(summary.outputs).toEqual([
      { name: 'cls_logits', shape: ['N', 'A', 1] },
      { name: 'box_deltas', shape: ['N', 'A', 4] },
      { name: 'iou_logits', shape: ['N', 'A', 1] },
    ]);
    model.dispose();
  });

  it('carries the operating point when given, and reads files without one as before', () => {
    const model = tinyDetector();
    const operatingPoint = {
      scoreThreshold: 0.41,
      precision: 0.9,
      recall: 0.8,
      f1: (2 * 0.9 * 0.8) / 1.7,
      iou: 0.5,
      split: 'val',
      step: 200,
    };
    const withOp = readBmcMetadata(exportDetectorOnnx(model, { ...meta, operatingPoint }).bytes);
    expect(withOp.operatingPoint).toEqual(operatingPoint);
    // The AP threshold stays beside it, unchanged.
    expect(withOp.nms.scoreThreshold).toBe(0.05);
    expect(readOnnxMetadataProps(exportDetectorOnnx(model, meta).bytes)['bmc.operating_point']).toBe(
      undefined,
    );
    expect(readBmcMetadata(exportDetectorOnnx(model, meta).bytes).operatingPoint).toBe(undefined);
    expect(() =>
      exportDetectorOnnx(model, { ...meta, operatingPoint: { ...operatingPoint, scoreThreshold: 1.5 } }),
    ).toThrow(/'bmc\.operating_point' must be \{scoreThreshold/);
    model.dispose();
  });

  it('rejects an ONNX file without bmc metadata with a clear error', () => {
    expect(() => readBmcMetadata(bytes(fixture.withoutBmc.model), 'other.onnx')).toThrow(BmcMetadataError);
    expect(() => readBmcMetadata(bytes(fixture.withoutBmc.model), 'other.onnx')).toThrow(
      /other\.onnx: not a bmc model, metadata_props has no 'bmc\.format' entry \(keys present: author, license\)/,
    );
    expect(() => readBmcMetadata(bytes(fixture.noProps.model), 'bare.onnx')).toThrow(
      /no metadata_props at all/,
    );
    const model = tinyDetector();
    const plain = exportOnnx(model).bytes; // generic export: no bmc metadata
    expect(() => readBmcMetadata(plain)).toThrow(/not a bmc model/);
    model.dispose();
  });

  it('rejects malformed entries and non-ONNX bytes', () => {
    expect(() => readBmcMetadata(bytes(fixture.brokenJson.model), 'broken.onnx')).toThrow(
      /broken\.onnx: bmc metadata entry 'bmc\.nms' is not valid JSON/,
    );
    expect(() => readBmcMetadata(new TextEncoder().encode('this is not protobuf at all'), 'x.txt')).toThrow(
      /x\.txt: not a readable ONNX ModelProto/,
    );
    expect(() =>
      bmcMetadataProps({
        ...meta,
        version: '1',
        classNames: [],
        input: { ...meta.input, name: 'i', layout: 'NCHW', channelOrder: 'RGB' },
        outputs: { clsLogits: 'a', boxDeltas: 'b' },
      }),
    ).toThrow(/'bmc\.class_names' must be a non-empty array/);
  });
});
