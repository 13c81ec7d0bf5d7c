/** Thrown when a job waited or ran longer than its deadline. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** Thrown when the queue is full; the caller should retry later. */
export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/** Thrown when a job's caller went away (its signal aborted) before it finished. */
export class CancelledError extends Error {
  override name = 'CancelledError';
}

/** A place in the queue held while a request body is still arriving; see `JobQueue.reserve`. */
export interface Reservation {
  /** Gives the place back (idempotent); `run` with this reservation takes it over instead. */
  release(): void;
}

export interface RunOptions {
  /** Deadline for waiting plus running, in ms. Past it the job's signal aborts with a `TimeoutError`. */
  timeoutMs: number;
  /** The caller's signal (e.g. the request closing): a waiting job is dropped, a running one told to stop. */
  signal?: AbortSignal;
  /** A place taken earlier with `reserve()`: the job uses it and skips the capacity check. */
  reservation?: Reservation;
}

/**
 * A FIFO job queue with a concurrency limit, a bounded backlog, a deadline per
 * job and cancellation. Capacity is `concurrency + maxWaiting` places, counting
 * running jobs, waiting jobs and reservations (requests whose body is still
 * being received), so a server can refuse a request before reading its body.
 *
 * A job whose deadline passes or whose caller leaves while it waits is dropped
 * without running. A running job gets an `AbortSignal` and must check it
 * between steps (onnxruntime cannot interrupt a network pass); its place stays
 * taken until it actually returns, so the count of running jobs is the work
 * the machine is really doing.
 */
export class JobQueue {
  private running = 0;
  private reserved = 0;
  private readonly waiting: Array<() => void> = [];
  private readonly counts = { completed: 0, rejected: 0, timedOut: 0, cancelled: 0 };
  /** Moving average of job run time, for `Retry-After` estimates. */
  private avgRunMs = 0;
  private readonly freeListeners: Array<() => void> = [];
  /** Gives a reservation's place to its job without announcing a free place in between. */
  private readonly handOver = new WeakMap<Reservation, () => void>();

  constructor(
    readonly concurrency: number,
    readonly maxWaiting: number,
  ) {
    if (!(concurrency >= 1)) throw new RangeError(`JobQueue: concurrency must be >= 1, got ${concurrency}`);
    if (!(maxWaiting >= 0)) throw new RangeError(`JobQueue: maxWaiting must be >= 0, got ${maxWaiting}`);
  }

  get capacity(): number {
    return this.concurrency + this.maxWaiting;
  }

  /** Places taken: running + waiting + reserved. */
  get load(): number {
    return this.running + this.waiting.length + this.reserved;
  }

  get stats() {
    return {
      running: this.running,
      waiting: this.waiting.length,
      receiving: this.reserved,
      concurrency: this.concurrency,
      maxWaiting: this.maxWaiting,
      ...this.counts,
    };
  }

  /** Seconds until a place is likely free: the backlog times the mean run time, at least 1. */
  retryAfterSeconds(): number {
    const s = ((this.load / this.concurrency) * this.avgRunMs) / 1000;
    return Math.min(60, Math.max(1, Math.ceil(s)));
  }

  /**
   * Takes a place before the job exists (a server calls this before reading a
   * request body). Undefined when the queue is full: refuse the request.
   */
  reserve(countRejection = true): Reservation | undefined {
    if (this.load >= this.capacity) {
      if (countRejection) this.counts.rejected++;
      return undefined;
    }
    this.reserved++;
    let held = true;
    const drop = () => {
      if (!held) return false;
      held = false;
      this.reserved--;
      return true;
    };
    const reservation: Reservation = {
      release: () => {
        if (drop()) this.placeFreed();
      },
    };
    this.handOver.set(reservation, drop);
    return reservation;
  }

  /** Counts a refusal decided by the caller (e.g. after waiting for a place in vain). */
  countRejected(): void {
    this.counts.rejected++;
  }

  /** Calls `listener` whenever a place frees (a job ends or leaves, a reservation is released). */
  onPlaceFree(listener: () => void): void {
    this.freeListeners.push(listener);
  }

  private placeFreed(): void {
    this.next();
    for (const l of this.freeListeners) l();
  }

  run<T>(job: (signal: AbortSignal) => Promise<T>, options: RunOptions): Promise<T> {
    const { timeoutMs, signal, reservation } = options;
    if (reservation) (this.handOver.get(reservation) ?? reservation.release)();
    else if (this.load >= this.capacity) {
      this.counts.rejected++;
      return Promise.reject(
        new QueueFullError(`queue full (${this.running} running, ${this.waiting.length} waiting)`),
      );
    }
    if (signal?.aborted) {
      this.counts.cancelled++;
      return Promise.reject(new CancelledError('request abandoned before it was queued'));
    }
    return new Promise<T>((resolve, reject) => {
      const control = new AbortController();
      let settled = false;
      let started = false;
      const start = () => {
        if (settled) return this.next();
        started = true;
        this.running++;
        const t0 = performance.now();
        job(control.signal)
          .then(
            (v) => {
              this.counts.completed++;
              finish(() => resolve(v));
            },
            (e) => finish(() => reject(e)),
          )
          .finally(() => {
            const ms = performance.now() - t0;
            this.avgRunMs = this.avgRunMs === 0 ? ms : 0.8 * this.avgRunMs + 0.2 * ms;
            this.running--;
            this.placeFreed();
          });
      };
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      const stop = (error: Error) => {
        if (settled) return;
        const i = this.waiting.indexOf(start);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          queueMicrotask(() => this.placeFreed());
        }
        // Tell a running job to stop at its next check; it still holds its place until it returns.
        control.abort(error);
        finish(() => reject(error));
      };
      const onAbort = () => {
        this.counts.cancelled++;
        stop(new CancelledError(`request abandoned (${started ? 'while running' : 'while queued'})`));
      };
      const timer = setTimeout(() => {
        this.counts.timedOut++;
        stop(
          new TimeoutError(
            `no result within ${timeoutMs} ms (${started ? 'still running' : 'still queued'})`,
          ),
        );
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.running < this.concurrency && this.waiting.length === 0) start();
      else this.waiting.push(start);
    });
  }

  private next(): void {
    while (this.running < this.concurrency && this.waiting.length > 0) this.waiting.shift()!();
  }
}
