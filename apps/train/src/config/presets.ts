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

/** One cell of the thesis's ablation: PAN-attn on/off x IoU branch on/off. */
export interface AblationCell {
  neck: 'fpn' | 'pan-attn';
  iouBranch: boolean;
  /**
   * Levels the head runs on; undefined: the base preset's. The FPN cells use RetinaNet's P3-P7, so the
   * "neither module" cell is the thesis's baseline network (R50-FPN P3-P7, no IoU branch, class score).
   */
  levels: number[] | undefined;
  /** `fpn-noiou`, `pan-attn-iou`, ...: the preset is `ablation-<key>`. */
  key: string;
  /** `fpn`, `pan-attn + IoU branch`, ...: the row of `bmc ablation`'s table. */
  label: string;
}

/** RetinaNet's levels (the thesis's baseline): P3-P7. */
export const BASELINE_LEVELS: readonly number[] = [3, 4, 5, 6, 7];

/** The ablation grid, defined once: the `ablation-*` presets and `bmc ablation` both run it. */
export const ABLATION_GRID: readonly AblationCell[] = (['fpn', 'pan-attn'] as const).flatMap((neck) =>
  [false, true].map((iouBranch) => ({
    neck,
    iouBranch,
    levels: neck === 'fpn' ? [...BASELINE_LEVELS] : undefined,
    key: `${neck}-${iouBranch ? 'iou' : 'noiou'}`,
    label: `${neck}${iouBranch ? ' + IoU branch' : ''}`,
  })),
);

/**
 * Named starting points. `thesis` is the thesis's modules and schedule with
 * bmc's choices where the thesis is silent or bmc departs (docs/departures.md);
 * `thesis-as-written` switches every departure back to what the thesis says;
 * `baseline` the RetinaNet it is compared with; `tiny` a CPU-sized model for
 * demos and tests; the `ablation-*` presets are the thesis's ablation grid.
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
    // Batch 16 as 16 micro-batches of one image: the memory plan (train/memory-plan.ts) puts one 512x512
    // image at ~1.2 GiB of tfjs-wasm's 4 GiB heap, one 1024x1024 image at ~3.7 GiB. Exact, since the
    // backbone's BatchNorm is frozen and the neck and head have none.
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
    // From scratch on CPU in minutes: AdamW learns several times faster than the thesis's SGD here.
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

/**
 * What the thesis says where bmc departs from it (docs/departures.md, one row per override): the
 * baseline's anchors and levels (N3-N7, 140.11 GFLOPs at 800x832 with P6 from C5, +3.2% over the
 * baseline's 135.73, where N2-N5 costs 2.86x), the IoU BCE over all anchors, no warm-up, clipping or
 * augmentation (the thesis states the SGD schedule only) and OTA without the row normalisation.
 */
export const THESIS_AS_WRITTEN: TrainConfigInput = {
  model: { neck: { levels: [...BASELINE_LEVELS] } },
  loss: { iouLossOn: 'all' },
  optim: { warmupIters: 0, clipGradNorm: 0 },
  data: { augment: { hflip: 0, vflip: 0, scale: [1, 1], colorJitter: 0, hed: 0 } },
  assigner: { type: 'ota', options: { rescale: false } },
};

PRESETS['thesis-as-written'] = {
  ...PRESETS.thesis,
  name: 'thesis-as-written',
  model: {
    ...PRESETS.thesis!.model,
    neck: { ...PRESETS.thesis!.model!.neck, ...THESIS_AS_WRITTEN.model!.neck },
  },
  loss: { ...THESIS_AS_WRITTEN.loss },
  optim: { ...PRESETS.thesis!.optim, ...THESIS_AS_WRITTEN.optim },
  data: { ...THESIS_AS_WRITTEN.data },
  assigner: { ...THESIS_AS_WRITTEN.assigner! },
};

// The ablation on the thesis model.
for (const cell of ABLATION_GRID) {
  PRESETS[`ablation-${cell.key}`] = {
    ...PRESETS.thesis,
    name: `ablation-${cell.key}`,
    model: {
      ...PRESETS.thesis!.model,
      neck: { type: cell.neck, levels: cell.levels ?? [2, 3, 4, 5] },
      head: { iouBranch: cell.iouBranch },
    },
    inference: { scoreMode: cell.iouBranch ? 'sqrt(cls*iou)' : 'cls' },
  };
}

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}
