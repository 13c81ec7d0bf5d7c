import { SingleBar } from 'cli-progress';

/** The terminal progress bar of a training run (absent when stdout is not a TTY); any task's loss parts. */
export class TrainProgress {
  private readonly bar?: SingleBar;

  constructor(show: boolean, totalSteps: number, step: number, epoch: number) {
    if (!show) return;
    this.bar = new SingleBar({
      format:
        'epoch {epoch} |{bar}| {value}/{total} steps | ETA {eta_formatted} | loss {loss}{detail} | lr {lr} | {ips} img/s',
      hideCursor: true,
    });
    this.bar.start(totalSteps, step, { epoch: epoch + 1, loss: '-', detail: '', lr: '-', ips: '-' });
  }

  /** `detail`: the task's loss parts as it writes them, e.g. ` (cls 0.1 box 0.2 iou 0.3)`. */
  update(
    step: number,
    epoch: number,
    loss: number,
    detail: string,
    lr: number,
    imagesPerSecond: number,
  ): void {
    this.bar?.update(step, {
      epoch: epoch + 1,
      loss: loss.toFixed(3),
      detail,
      lr: lr.toExponential(1),
      ips: imagesPerSecond.toFixed(1),
    });
  }

  stop(): void {
    this.bar?.stop();
  }
}
