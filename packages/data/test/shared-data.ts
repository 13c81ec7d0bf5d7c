import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** `../shared/data` next to the workspace root, or `$BMC_SHARED_DATA`; undefined when absent. */
export function sharedDataDir(): string | undefined {
  if (process.env.BMC_SHARED_DATA)
    return existsSync(process.env.BMC_SHARED_DATA) ? process.env.BMC_SHARED_DATA : undefined;
  let d = import.meta.dirname;
  while (!existsSync(join(d, 'pnpm-workspace.yaml'))) {
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
  const p = resolve(d, '..', 'shared', 'data');
  return existsSync(p) ? p : undefined;
}
