import { InvalidInputError } from './validate.js';

/**
 * The three kinds of error a command can end with, and the exit code each maps to. A command
 * line tool picks its exit code from the kind, never from the wording of the message:
 * - `usage`: the command line itself is wrong (an unknown option, a value out of range);
 * - `input`: a file or folder the user gave is missing, unreadable or malformed;
 * - `failed`: the work itself failed (a bug, a full disk, a diverging run).
 */
export type ErrorKind = 'usage' | 'input' | 'failed';

/** Exit code per kind: 0 ok, 1 failed work, 2 bad usage or bad input. */
export const EXIT_CODES = { ok: 0, failed: 1, usage: 2, input: 2 } as const;

/** The command line is wrong: an option value out of range, options that contradict each other. */
export class UsageError extends Error {
  override name = 'UsageError';
  readonly kind = 'usage' as const;
}

/**
 * A user's file or folder is missing, unreadable or malformed. `file` names it (also part of the
 * message, so printing the message alone is actionable). It is an `InvalidInputError`, so code
 * that already catches bad inputs of the library functions catches bad files too.
 */
export class InputError extends InvalidInputError {
  override name = 'InputError';
  readonly kind = 'input' as const;
  constructor(
    message: string,
    readonly file?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const KINDS = new Set<string>(['usage', 'input', 'failed']);

/**
 * The kind of `err`. Besides `instanceof`, an error object carrying `kind: 'usage' | 'input'`
 * counts, so errors re-created across worker threads or from another copy of this package
 * keep their kind. Anything else is failed work.
 */
export function errorKind(err: unknown): ErrorKind {
  if (err instanceof UsageError) return 'usage';
  if (err instanceof InputError) return 'input';
  const kind = (err as { kind?: unknown } | null)?.kind;
  return typeof kind === 'string' && KINDS.has(kind) ? (kind as ErrorKind) : 'failed';
}

/** The exit code for an error that ended a command: 2 for bad usage or bad input, 1 otherwise. */
export function exitCodeFor(err: unknown): number {
  return EXIT_CODES[errorKind(err)];
}
