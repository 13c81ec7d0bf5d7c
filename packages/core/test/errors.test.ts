import { describe, expect, it } from 'vitest';
import {
  EXIT_CODES,
  errorKind,
  exitCodeFor,
  InputError,
  InvalidInputError,
  printable,
  UsageError,
} from '../src/index.js';

describe('error kinds', () => {
  it('maps usage and input errors to 2 and anything else to 1, whatever the message says', () => {
    expect(exitCodeFor(new UsageError('x'))).toBe(2);
    expect(exitCodeFor(new InputError('a.json: invalid', 'a.json'))).toBe(2);
    // The old CLI matched /config|invalid|format|no such/ in the message: wording must not matter.
    expect(exitCodeFor(new Error('invalid config: no such format'))).toBe(1);
    expect(exitCodeFor(new RangeError('boom'))).toBe(1);
    expect(exitCodeFor('a string')).toBe(1);
    expect(exitCodeFor(undefined)).toBe(1);
    expect(EXIT_CODES).toEqual({ ok: 0, failed: 1, usage: 2, input: 2 });
  });

  it('keeps the file, and an InputError is still an InvalidInputError', () => {
    const e = new InputError('data/a.png: truncated', 'data/a.png');
    expect(e.file).toBe('data/a.png');
    expect(e).toBeInstanceOf(InvalidInputError);
    expect(e.name).toBe('InputError');
    // A bare InvalidInputError (e.g. NaN reaching a library function) is not the user's file.
    expect(errorKind(new InvalidInputError('boxes: NaN'))).toBe('failed');
  });

  it('recognises a kind carried by a plain object (errors re-created across threads)', () => {
    expect(errorKind(Object.assign(new Error('x'), { kind: 'input' }))).toBe('input');
    expect(errorKind(Object.assign(new Error('x'), { kind: 'nonsense' }))).toBe('failed');
  });
});

describe('printable', () => {
  it('escapes ANSI escapes, control characters and bidi overrides, keeps newlines and tabs', () => {
    expect(printable('\u001b[31mred\u001b[0m')).toBe('\\x1b[31mred\\x1b[0m');
    expect(printable('a\tb\nc')).toBe('a\tb\nc');
    expect(printable('a\nb', { keepNewlines: false })).toBe('a\\x0ab');
    expect(printable('over\rwrite')).toBe('over\\x0dwrite');
    expect(printable('x\u0007\u007f\u009by')).toBe('x\\x07\\x7f\\x9by');
    expect(printable('evil\u202etxt.png')).toBe('evil\\u{202e}txt.png');
    expect(printable('plain café 細胞')).toBe('plain café 細胞');
  });
});
