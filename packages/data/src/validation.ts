import { DataError } from './errors.js';

/**
 * `strict`: the first problem throws a {@link DataError}.
 * `lenient`: problems that have a safe fix (clip a box, drop a box or an image) are fixed and
 * recorded in the {@link ValidationReport}; problems without one (unparseable file) still throw.
 */
export type ValidationPolicy = 'strict' | 'lenient';

/** What lenient mode did about a problem. */
export type FixAction = 'clipped' | 'dropped-box' | 'dropped-image' | 'ignored';

export interface ValidationIssue {
  readonly file: string;
  /** Line, object or id inside the file, e.g. `line 3`, `object 2 (RBC)`, `annotation id 17`. */
  readonly where: string | undefined;
  readonly problem: string;
  readonly action: FixAction;
}

export interface ValidationReport {
  readonly issues: ValidationIssue[];
}

/** Collects problems under one policy; readers call it for every check they make. */
export class Validator {
  readonly issues: ValidationIssue[] = [];
  constructor(readonly policy: ValidationPolicy = 'strict') {}

  /** A problem with no safe fix: always an error. */
  fail(file: string, where: string | undefined, problem: string): never {
    throw new DataError(file, where, problem);
  }

  /** A fixable problem: throws under `strict`, records `action` under `lenient`. */
  problem(file: string, where: string | undefined, problem: string, action: FixAction): void {
    if (this.policy === 'strict') throw new DataError(file, where, problem);
    this.issues.push({ file, where, problem, action });
  }

  report(): ValidationReport {
    return { issues: [...this.issues] };
  }
}

/** One line per issue, for logs and CLI output. */
export function formatReport(report: ValidationReport): string {
  return report.issues
    .map((i) => `${i.file}${i.where ? `: ${i.where}` : ''}: ${i.problem} -> ${i.action}`)
    .join('\n');
}
