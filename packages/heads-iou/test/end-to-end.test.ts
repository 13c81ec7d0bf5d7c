import { importTorchWeights, parseSafetensors, safetensorsSource } from '@bmc/backbone';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildDetector, detectorConfig, postprocessDetections } from '../src/index.js';
import { type ArrayFixture, readBytes, readJson, relativeMaxDiff, useCpu } from './helpers.js';

interface E2EFixture {
  numClasses: number;
  widthMultiplier: number;
  channels: number;
  input: ArrayFixture;
  anchors: number[];
  cls_logits: number[];
  bbox_regression: number[];
  detections: { boxes: number[]; scores: number[]; labels: number[] };
}

const fx = readJson<E2EFixture>('retinanet_e2e.json');
beforeAll(useCpu);

describe('a whole torchvision RetinaNet imported by name', () => {
  it('buildDetector reproduces its head outputs and final detections (ResNet18/32-FPN P3-P7, 29x37 input)', () => {
    const det = buildDetector(
      detectorConfig('baseline', {
        inputSize: [29, 37],
        backbone: { depth: 18, widthMultiplier: fx.widthMultiplier, frozenStages: -1 },
        neck: { channels: fx.channels },
        head: { numClasses: fx.numClasses },
      }),
    );
    // The complete state_dict, strict: every torchvision key has a layer of the same name.
    const report = importTorchWeights(
      det.model,
      safetensorsSource(
        parseSafetensors(readBytes('retinanet_e2e.safetensors'), 'retinanet_e2e.safetensors'),
      ),
    );
    expect(report.missing).toEqual([]);
    expect(report.unexpected).toEqual([]);
    const x = tf.tensor(fx.input.data, fx.input.shape);
    const [cls, box] = det.model.predict(x) as tf.Tensor[];
    const clsData = cls!.dataSync() as Float32Array;
    const boxData = box!.dataSync() as Float32Array;
    expect(relativeMaxDiff(clsData, fx.cls_logits)).toBeLessThan(1e-4);
    expect(relativeMaxDiff(boxData, fx.bbox_regression)).toBeLessThan(1e-4);
    tf.dispose([x, cls!, box!]);

    // torchvision's AnchorGenerator spaces anchors by image // feature size (37 // 5 = 7 px on P3 here),
    // @bmc/core by the true stride (8): they agree only for multiples of the largest stride. This case
    // is about the network and post-processing, so it uses torchvision's anchors.
    const ours = det.anchorsFor(29, 37);
    expect(ours.boxes.length).toBe(fx.anchors.length);
    const anchors = { boxes: fx.anchors, levelCounts: ours.levelCounts };
    const dets = postprocessDetections({ clsLogits: clsData, boxDeltas: boxData }, anchors, fx.numClasses, {
      ...det.config.postprocess,
      imageSize: [29, 37],
      keepEmptyBoxes: true, // as torchvision, whose output is the reference
    });
    expect([...dets.labels]).toEqual(fx.detections.labels);
    expect(relativeMaxDiff(dets.scores, fx.detections.scores)).toBeLessThan(1e-4);
    expect(relativeMaxDiff(dets.boxes, fx.detections.boxes)).toBeLessThan(1e-4);
    det.model.dispose();
  });
});
