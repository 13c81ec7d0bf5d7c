/**
 * The names of the detector network's raw outputs: the head builds them, the ONNX export writes
 * them and the inference pipelines read them, so all take them from here.
 */
export const OUTPUT_NAMES = { cls: 'cls_logits', box: 'box_deltas', iou: 'iou_logits' } as const;

/** The same names in model-output order (cls, box, then iou when the IoU branch exists). */
export const DETECTOR_OUTPUTS = [OUTPUT_NAMES.cls, OUTPUT_NAMES.box, OUTPUT_NAMES.iou] as const;
