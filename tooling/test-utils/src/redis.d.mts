export interface TestRedis {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly pid: number | undefined;
  /** SIGKILL, optionally stay down `downMs`, then start again on the same port, empty. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}
/** Path of redis-server, or undefined when it is not installed. */
export function redisServerPath(): string | undefined;
/** A TCP port nobody listens on now. */
export function freePort(): Promise<number>;
/** redis-server without persistence on a free port; undefined when redis-server is not installed. */
export function startRedis(): Promise<TestRedis | undefined>;
