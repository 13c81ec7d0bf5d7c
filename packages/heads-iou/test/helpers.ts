import { networkTestHelpers } from '@bmc/test-utils';
import * as tf from '@tensorflow/tfjs';

export { type ArrayFixture, relativeMaxDiff } from '@bmc/test-utils';
export const { FIXTURES, readJson, readBytes, useCpu } = networkTestHelpers(import.meta.url, tf);

/**
 * Image `img`'s head outputs from the post-processing part of heads_parity.json, whose arrays hold
 * the whole batch image after image.
 */
export function fixtureImageOutputs(
  fx: {
    numClasses: number;
    postprocess: { anchors: number[]; cls_logits: number[]; box_deltas: number[]; iou_logits: number[] };
  },
  img: number,
) {
  const pp = fx.postprocess;
  const a = pp.anchors.length / 4;
  return {
    clsLogits: pp.cls_logits.slice(img * a * fx.numClasses, (img + 1) * a * fx.numClasses),
    boxDeltas: pp.box_deltas.slice(img * a * 4, (img + 1) * a * 4),
    iouLogits: pp.iou_logits.slice(img * a, (img + 1) * a),
  };
}
