import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * One JSON object per line, appended as events happen. Each append is a single
 * write of a whole line, so after a crash the file holds complete lines (at
 * worst the last one is missing), and readers skip a torn final line.
 */
export class JsonlLog {
  constructor(readonly file: string) {
    mkdirSync(dirname(file), { recursive: true });
  }

  write(event: Record<string, unknown>): void {
    appendFileSync(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  }
}

/** Reads a JSONL file, ignoring a torn last line. */
export function readJsonl(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // only the final line can be torn by a crash mid-append
    }
  }
  return out;
}
