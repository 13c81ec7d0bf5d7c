/**
 * Text from users' files (names, labels, messages quoting them) escaped for a terminal: control
 * characters, ANSI escape sequences (ESC), DEL, C1 controls and the Unicode bidirectional
 * overrides become visible `\xNN` / `\u{NNNN}` escapes, so a crafted file name or label cannot
 * recolour, rewrite or reorder what the terminal shows. Newlines and tabs are kept (messages are
 * multi-line) unless `keepNewlines` is false; a lone carriage return is escaped (it would let a
 * name overwrite the start of its own line).
 */
export function printable(text: string, options: { keepNewlines?: boolean } = {}): string {
  const keep = options.keepNewlines ?? true;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    if (keep && (c === '\n' || c === '\t')) return c;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}
