/** Thrown when a job waited or ran longer than its deadline. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** Thrown when the queue is full; the caller should retry later. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/**
 * A FIFO job queue with a concurrency limit, a bounded backlog and a deadline
 * per job. A job whose deadline passes while it waits is dropped without
 * running; one that is already running cannot be interrupted (onnxruntime has
 * no cancel), so its caller gets the timeout and the result is discarded.
 */
export class JobQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly concurrency: number,
    readonly maxWaiting: number,
  ) {
    if (!(concurrency >= 1)) throw new RangeError(`JobQueue: concurrency must be >= 1, got ${concurrency}`);
  }

  get stats() {
    return {
      running: this.running,
      waiting: this.waiting.length,
      concurrency: this.concurrency,
      maxWaiting: this.maxWaiting,
    };
  }

  run<T>(job: () => Promise<T>, timeoutMs: number): Promise<T> {
    if (this.running >= this.concurrency && this.waiting.length >= this.maxWaiting) {
      return Promise.reject(
        new QueueFullError(`queue full (${this.running} running, ${this.waiting.length} waiting)`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const start = () => {
        if (settled) return this.next();
        this.running++;
        job()
          .then(
            (v) => finish(() => resolve(v)),
            (e) => finish(() => reject(e)),
          )
          .finally(() => {
            this.running--;
            this.next();
          });
      };
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        f();
      };
      const timer = setTimeout(() => {
        const i = this.waiting.indexOf(start);
        if (i >= 0) this.waiting.splice(i, 1);
        finish(() =>
          reject(
            new TimeoutError(
              `no result within ${timeoutMs} ms (${i >= 0 ? 'still queued' : 'still running'})`,
            ),
          ),
        );
      }, timeoutMs);
      if (this.running < this.concurrency) start();
      else this.waiting.push(start);
    });
  }

  private next(): void {
    if (this.running < this.concurrency) this.waiting.shift()?.();
  }
}
