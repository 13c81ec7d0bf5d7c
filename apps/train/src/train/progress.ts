import { SingleBar } from 'cli-progress';
import type { StepResult } from './step.js';

/** The terminal progress bar of a training run (absent when stdout is not a TTY). */
export class TrainProgress {
  private readonly bar?: SingleBar;

  constructor(show: boolean, totalSteps: number, step: number, epoch: number) {
    if (!show) return;
    this.bar = new SingleBar({
      format:
        'epoch {epoch} |{bar}| {value}/{total} steps | ETA {eta_formatted} | loss {loss} (cls {cls} box {box} iou {iou}) | lr {lr} | {ips} img/s',
      hideCursor: true,
    });
    this.bar.start(totalSteps, step, {
      epoch: epoch + 1,
      loss: '-',
      cls: '-',
      box: '-',
      iou: '-',
      lr: '-',
      ips: '-',
    });
  }

  update(step: number, epoch: number, r: StepResult, lr: number, imagesPerSecond: number): void {
    this.bar?.update(step, {
      epoch: epoch + 1,
      loss: r.total.toFixed(3),
      cls: r.cls.toFixed(3),
      box: r.box.toFixed(3),
      iou: r.iou.toFixed(3),
      lr: lr.toExponential(1),
      ips: imagesPerSecond.toFixed(1),
    });
  }

  stop(): void {
    this.bar?.stop();
  }
}
