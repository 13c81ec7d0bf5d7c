import type { Detector } from '@bmc/heads-iou';
import type { TrainConfig } from '../config/schema.js';
import type { JsonlLog } from '../run/jsonl-log.js';
import type { CheckpointWriter } from './checkpoints.js';
import type { Split } from './data.js';
import { type Evaluation, evaluatePredictions, predictSplit } from './evaluate.js';
import { inProcessMetadata, runMetadata } from './model-metadata.js';
import { describeOperatingPoint, operatingPointOf } from './operating-point.js';
import type { TrainState } from './state.js';

/** The part of the config validation reads. */
export type ValidationConfig = Pick<TrainConfig, 'name' | 'data' | 'model' | 'inference'>;

/**
 * Validation during training: COCO AP of the current weights on the
 * validation split; a new best AP replaces `best/`. Remembers which step it
 * last saw, so the end of a run validates only weights it has not seen.
 */
export class Validator {
  private lastStep = -1;

  constructor(
    private readonly config: ValidationConfig,
    private readonly detector: Detector,
    private readonly split: Split,
    private readonly classes: string[],
    private readonly checkpoints: CheckpointWriter,
    private readonly log: JsonlLog,
    private readonly say: (s: string) => void,
  ) {}

  /** Whether the weights at `step` were validated already. */
  seen(step: number): boolean {
    return this.lastStep === step;
  }

  async run(state: TrainState): Promise<Evaluation> {
    const meta = runMetadata(this.config, this.detector.config, this.classes, this.split.scale.scale);
    const preds = await predictSplit(this.detector.model, this.split, inProcessMetadata(meta));
    const ev = evaluatePredictions(preds, `${this.config.name}: validation`);
    const [ap, ap50, ap75] = ev.result.stats as [number, number, number];
    // The counting threshold of these weights; best/ keeps the one measured with its own weights.
    const operatingPoint = operatingPointOf(ev, state.step);
    if (operatingPoint) state.operatingPoint = operatingPoint;
    else delete state.operatingPoint;
    this.lastStep = state.step;
    this.log.write({
      event: 'eval',
      split: 'val',
      step: state.step,
      epoch: state.epoch,
      AP: ap,
      AP50: ap50,
      AP75: ap75,
      ...(operatingPoint ? { operatingPoint } : {}),
    });
    this.say(
      `validation at step ${state.step} (epoch ${state.epoch}): AP ${ap.toFixed(4)}  AP50 ${ap50.toFixed(4)}  AP75 ${ap75.toFixed(4)}; ${describeOperatingPoint(operatingPoint)}`,
    );
    if (ap > state.bestAp) {
      state.bestAp = ap;
      state.bestStep = state.step;
      await this.checkpoints.best(state, ap);
    }
    return ev;
  }
}
