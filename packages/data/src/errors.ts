import { InputError } from '@bmc/core';

/**
 * A problem with a user's data file (an `InputError` from @bmc/core: bad input, exit code 2 in the CLI). `file` and `where` (line, object, id...) are kept as
 * fields so tools can show them, and are also part of the message so a plain `console.error`
 * of the error is already actionable.
 */
export class DataError extends InputError {
  override name = 'DataError';
  constructor(
    override readonly file: string,
    readonly where: string | undefined,
    readonly problem: string,
  ) {
    super(where ? `${file}: ${where}: ${problem}` : `${file}: ${problem}`, file);
  }
}

/** Line and column (1-based) of a character offset in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let last = -1;
  const end = Math.min(Math.max(offset, 0), text.length);
  for (let i = 0; i < end; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      last = i;
    }
  }
  return { line, column: end - last };
}
