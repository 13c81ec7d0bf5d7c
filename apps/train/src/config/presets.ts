import { type DetectorPreset, detectorConfig } from '@bmc/heads-iou';
import type { TrainConfigInput } from './schema.js';

/** The network of @bmc/heads-iou's preset of that name, in training-config terms (one definition of it). */
function networkOf(preset: DetectorPreset): NonNullable<TrainConfigInput['model']> {
  const { backbone, neck, head } = detectorConfig(preset);
  return {
    backbone: { ...backbone },
    neck: {
      type: neck.kind,
      levels: [...neck.levels],
      channels: neck.channels,
      extraFrom: neck.extraFrom,
      attentionReduction: neck.attentionReduction,
    },
    head: { numConvs: head.numConvs, iouBranch: head.iouBranch },
  };
}

/** One cell of the published ablation: PAN-attn on/off x IoU branch on/off. */
export interface AblationCell {
  neck: 'fpn' | 'pan-attn';
  iouBranch: boolean;
  /** `fpn-noiou`, `pan-attn-iou`, ...: the preset is `ablation-<key>`. */
  key: string;
  /** `fpn`, `pan-attn + IoU branch`, ...: the row of `bmc ablation`'s table. */
  label: string;
}

/** The published ablation grid, defined once: the `ablation-*` presets and `bmc ablation` both run it. */
export const ABLATION_GRID: readonly AblationCell[] = (['fpn', 'pan-attn'] as const).flatMap((neck) =>
  [false, true].map((iouBranch) => ({
    neck,
    iouBranch,
    key: `${neck}-${iouBranch ? 'iou' : 'noiou'}`,
    label: `${neck}${iouBranch ? ' + IoU branch' : ''}`,
  })),
);

/**
 * Named starting points. `thesis` is the published design and schedule;
 * `baseline` the RetinaNet it is compared with; `tiny` a CPU-sized model for
 * demos and tests; the `ablation-*` presets are the published ablation grid.
 */
export const PRESETS: Record<string, TrainConfigInput> = {
  thesis: {
    name: 'thesis',
    model: {
      backbone: { depth: 50, frozenStages: 1, frozenBatchNorm: true },
      neck: { type: 'pan-attn', levels: [2, 3, 4, 5] },
      head: { iouBranch: true },
    },
    assigner: { type: 'ota' },
    // Batch 16 as 16 micro-batches of one image: one 512x512 image's activations already take most of
    // tfjs-wasm's 4 GiB heap. Exact, since the backbone's BatchNorm is frozen and the neck and head have none.
    optim: {
      lr: 0.001,
      momentum: 0.9,
      weightDecay: 5e-4,
      epochs: 36,
      steps: [16, 28],
      batchSize: 16,
      microBatch: 1,
    },
    inference: { scoreMode: 'sqrt(cls*iou)' },
  },
  baseline: {
    name: 'baseline',
    model: {
      backbone: { depth: 50 },
      neck: { type: 'fpn', levels: [3, 4, 5, 6, 7] },
      head: { iouBranch: false },
    },
    assigner: { type: 'maxiou' },
    loss: { box: 'l1', iouWeight: 0 },
    optim: { microBatch: 1 },
    inference: { scoreMode: 'cls' },
  },
  tiny: {
    name: 'tiny',
    // @bmc/heads-iou's tiny network: R18 x0.25, N3-N5 PAN-attn with 48 channels (the demo's figures), 2-conv head.
    model: networkOf('tiny'),
    assigner: { type: 'atss' },
    // From scratch on CPU in minutes: AdamW learns several times faster than the published SGD here.
    optim: {
      type: 'adamw',
      lr: 0.002,
      weightDecay: 0.05,
      // Measured: validation AP50 reached 0.99 after 3 epochs of 240 images at this setting.
      epochs: 4,
      steps: [3],
      warmupIters: 50,
      warmupFactor: 0.1,
      batchSize: 4,
    },
    data: {
      format: 'synthetic',
      imageSize: 256,
      synthetic: { train: 200, val: 40, test: 40, seed: 1 },
    },
    run: { evalEvery: 2 },
  },
};

// The published ablation on the thesis model.
for (const cell of ABLATION_GRID) {
  PRESETS[`ablation-${cell.key}`] = {
    ...PRESETS.thesis,
    name: `ablation-${cell.key}`,
    model: {
      ...PRESETS.thesis!.model,
      neck: { type: cell.neck, levels: [2, 3, 4, 5] },
      head: { iouBranch: cell.iouBranch },
    },
    inference: { scoreMode: cell.iouBranch ? 'sqrt(cls*iou)' : 'cls' },
  };
}

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}
