import { z } from 'zod';

/**
 * The training configuration. Every key has a default, so a config file only
 * states what differs from its preset; unknown keys are rejected so that a
 * typo ("lr_step") fails loudly instead of being ignored.
 */
export const modelSchema = z
  .object({
    backbone: z
      .object({
        depth: z.union([z.literal(18), z.literal(34), z.literal(50), z.literal(101)]).default(50),
        /** Channel multiplier for tiny CPU models (non-standard below 1). */
        widthMultiplier: z.number().positive().max(1).default(1),
        /** Frozen stages, mmdetection's count: -1 none, 0 stem, 1 stem + layer1 (detection default), up to 4. */
        frozenStages: z.number().int().min(-1).max(4).default(1),
        frozenBatchNorm: z.boolean().default(true),
        /**
         * A torchvision / timm ResNet checkpoint of this depth (widthMultiplier 1) loaded before the first
         * step: the `.pth` torchvision downloads (read without executing anything in it) or `.safetensors`.
         * `fc.*` (the ImageNet classifier) is ignored; other names or shapes that do not fit are an error.
         */
        weights: z.string().optional(),
        /** Backbone frozen (no update, no weight decay) for the first N optimizer steps, then trained. */
        freezeSteps: z.number().int().min(0).default(0),
      })
      .strict()
      .prefault({}),
    neck: z
      .object({
        type: z.enum(['fpn', 'pan', 'pan-attn']).default('pan-attn'),
        /** Pyramid levels the head runs on, e.g. [2,3,4,5] (N2-N5) or [3,4,5,6,7] (P3-P7). */
        levels: z.array(z.number().int().min(2).max(7)).min(1).default([2, 3, 4, 5]),
        channels: z.number().int().positive().default(256),
        /** Input of P6 for P3-P7 models: 'p5' (torchvision) or 'c5' (RetinaNet paper). */
        extraFrom: z.enum(['p5', 'c5']).default('p5'),
        /** PAN-attn attention MLP reduction (hidden = channels / r). */
        attentionReduction: z.number().int().positive().default(16),
      })
      .strict()
      .prefault({}),
    head: z
      .object({
        numConvs: z.number().int().min(0).default(4),
        iouBranch: z.boolean().default(true),
        /** Octave scales per level (multiples of 4 x stride). */
        scales: z
          .array(z.number().positive())
          .min(1)
          .default([1, 2 ** (1 / 3), 2 ** (2 / 3)]),
        aspectRatios: z.array(z.number().positive()).min(1).default([0.5, 1, 2]),
        /** Anchor base size as a multiple of the level's stride (RetinaNet: 4). */
        anchorScale: z.number().positive().default(4),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export const assignerSchema = z
  .object({
    type: z.enum(['maxiou', 'atss', 'paa', 'ota']).default('ota'),
    /** Assigner-specific options passed through (e.g. { topK: 9 } for ATSS). */
    options: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

export const lossSchema = z
  .object({
    focalAlpha: z.number().min(0).max(1).default(0.25),
    focalGamma: z.number().min(0).default(2),
    box: z.enum(['giou', 'smooth_l1', 'l1']).default('giou'),
    /** 'per-image' (torchvision) or 'batch' (mmdetection) normalisation by positives. */
    normalization: z.enum(['per-image', 'batch']).default('per-image'),
    /** Weight of the box loss (l1 in the thesis). */
    boxWeight: z.number().min(0).default(1),
    /** Weight of the IoU-branch BCE (l2 in the thesis). */
    iouWeight: z.number().min(0).default(1),
    /**
     * Anchors the IoU BCE sums over: 'positives' (bmc's default) or 'all' non-ignored anchors, background
     * with target 0 (the thesis's Eq. 1.4; docs/departures.md).
     */
    iouLossOn: z.enum(['positives', 'all']).default('positives'),
  })
  .strict();

export const optimSchema = z
  .object({
    /** 'sgd' as the thesis (momentum, L2 decay); 'adamw' for from-scratch CPU runs that must learn in minutes. */
    type: z.enum(['sgd', 'adamw']).default('sgd'),
    /** AdamW moment coefficients. */
    betas: z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]).default([0.9, 0.999]),
    eps: z.number().positive().default(1e-8),
    lr: z.number().positive().default(0.001),
    momentum: z.number().min(0).max(1).default(0.9),
    weightDecay: z.number().min(0).default(5e-4),
    epochs: z.number().int().positive().default(36),
    /** Epochs at which the learning rate is multiplied by `gamma`. */
    steps: z.array(z.number().int().nonnegative()).default([16, 28]),
    gamma: z.number().positive().default(0.1),
    warmupIters: z.number().int().min(0).default(500),
    warmupFactor: z.number().positive().max(1).default(0.001),
    /** Clip the global gradient norm to this value; 0 disables. */
    clipGradNorm: z.number().min(0).default(10),
    batchSize: z.number().int().positive().default(16),
    /**
     * Images per forward/backward pass: a batch is run in chunks of this size, gradients summed, then one
     * optimizer step (gradient accumulation). 0: the whole batch at once. Same result as the whole batch
     * when BatchNorm is frozen; memory is what it saves (tfjs-wasm's heap is capped at 4 GiB).
     */
    microBatch: z.number().int().min(0).default(0),
  })
  .strict();

export const dataSchema = z
  .object({
    /** `synthetic` generates bone marrow smears; the others read files. */
    format: z.enum(['synthetic', 'coco', 'voc', 'yolo']).default('synthetic'),
    /** Dataset root (VOC/YOLO folder, or COCO JSON file for the train split). */
    path: z.string().optional(),
    /** COCO JSON for validation (COCO format only). */
    valPath: z.string().optional(),
    trainSplit: z.string().default('train'),
    valSplit: z.string().default('val'),
    testSplit: z.string().default('test'),
    /**
     * Network input side, a multiple of 32: the crop side in 'crops' sampling, the side the
     * longer image side is resized to in 'letterbox' sampling.
     */
    imageSize: z
      .number()
      .int()
      .positive()
      .refine((v) => v % 32 === 0, 'must be a multiple of 32')
      .default(512),
    /**
     * How training images meet `imageSize`. 'crops': random imageSize x imageSize crops at the
     * source resolution (scale jitter `augment.scale` around 1), so cells keep their size and a
     * step's memory does not depend on the field size; validation, test and `bmc detect` tile the
     * full images at the same scale. 'letterbox': each image's longer side is resized to
     * imageSize (and `bmc detect` resizes the same way). 'auto': crops when the training images
     * are larger than imageSize (median longer side), letterbox otherwise. Exported models record
     * the choice (bmc.pixel_scale).
     */
    sampling: z.enum(['auto', 'crops', 'letterbox']).default('auto'),
    /** Use at most this many images of each split (the first ones); 0: all. For quick checks. */
    limit: z.number().int().min(0).default(0),
    /** Collapse every category into one foreground class (the published setting). */
    classAgnostic: z.boolean().default(true),
    /**
     * A COCO JSON given alone (no `valPath`) is split into train / val / test by these shares
     * with this seed (stated in the log and the report), so validation and test never see a
     * training image.
     */
    autoSplit: z
      .object({
        val: z.number().min(0).max(0.5).default(0.15),
        test: z.number().min(0).max(0.5).default(0.15),
        seed: z.number().int().default(0),
      })
      .strict()
      .prefault({}),
    /**
     * Training skips an image that fails to decode (logged once); it stops with an error only when
     * more than this share of the training images failed.
     */
    maxBadImageShare: z.number().min(0).max(1).default(0.01),
    /** Read COCO images whose `file_name` lies outside the dataset folder (absolute or `../`). */
    allowOutsideRoot: z.boolean().default(false),
    augment: z
      .object({
        hflip: z.number().min(0).max(1).default(0.5),
        vflip: z.number().min(0).max(1).default(0.5),
        scale: z.tuple([z.number().positive(), z.number().positive()]).default([0.8, 1.2]),
        colorJitter: z.number().min(0).default(0.1),
        hed: z.number().min(0).default(0.03),
        /** 'crops' sampling: probability that a crop is drawn to contain a random box's centre (the rest are uniform). */
        cropOnCell: z.number().min(0).max(1).default(0.5),
      })
      .strict()
      .prefault({}),
    synthetic: z
      .object({
        train: z.number().int().positive().default(400),
        val: z.number().int().positive().default(60),
        test: z.number().int().positive().default(60),
        seed: z.number().int().default(1),
        density: z.number().positive().default(1),
        /**
         * Field size in pixels (default: imageSize x imageSize). Cells keep their size in pixels, so
         * e.g. 1920 x 1080 gives microscope-like fields with many cells, trained on crops.
         */
        width: z.number().int().positive().optional(),
        height: z.number().int().positive().optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export const inferenceSchema = z
  .object({
    scoreMode: z.enum(['cls', 'cls*iou', 'sqrt(cls*iou)']).default('sqrt(cls*iou)'),
    scoreThreshold: z.number().min(0).max(1).default(0.05),
    nmsIou: z.number().min(0).max(1).default(0.5),
    topKPerLevel: z.number().int().positive().default(1000),
    maxDetections: z.number().int().positive().default(100),
  })
  .strict();

export const runSchema = z
  .object({
    seed: z.number().int().default(0),
    /** Validate every N epochs (0: only at the end). */
    evalEvery: z.number().int().min(0).default(1),
    /** Checkpoint every N optimizer steps, besides each epoch end. */
    checkpointEvery: z.number().int().min(0).default(0),
    /** Stop after this many consecutive non-finite losses. */
    maxBadSteps: z.number().int().positive().default(5),
    /** Wall-clock budget in minutes; training stops cleanly (and checkpoints) when it runs out. 0: none. */
    timeBudgetMin: z.number().min(0).default(0),
    /** tfjs backend preference (see @bmc/core/backend); empty: best available. */
    backend: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
    /** Route convolutions through onnxruntime-node kernels when available (@bmc/engine). */
    nativeKernels: z.boolean().default(true),
    /**
     * Data-parallel replicas (the main thread plus worker threads) that split each batch; the cores are
     * divided among them for onnxruntime. 1: none. wasm and cpu backends only.
     */
    replicas: z.number().int().min(1).max(64).default(1),
  })
  .strict();

export const configSchema = z
  .object({
    name: z.string().default('run'),
    preset: z.string().optional(),
    model: modelSchema.prefault({}),
    assigner: assignerSchema.prefault({}),
    loss: lossSchema.prefault({}),
    optim: optimSchema.prefault({}),
    data: dataSchema.prefault({}),
    inference: inferenceSchema.prefault({}),
    run: runSchema.prefault({}),
  })
  .strict();

export type TrainConfig = z.infer<typeof configSchema>;
/** A config as written by a user: any subset of keys. */
export type TrainConfigInput = z.input<typeof configSchema>;
