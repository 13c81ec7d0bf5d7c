import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `../shared/fixtures` next to the workspace root (the folder holding pnpm-workspace.yaml). */
export function sharedFixturesDir(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) {
      const shared = join(dir, '..', 'shared', 'fixtures');
      return existsSync(shared) ? shared : null;
    }
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export const cocoEvalDir = (() => {
  const f = sharedFixturesDir();
  const d = f && join(f, 'coco-eval');
  return d && existsSync(d) ? d : null;
})();

export interface CocoCase {
  name: string;
  gt: unknown;
  dt: unknown;
  expected: { stats: number[]; ap_per_iou: number[] };
  meta: {
    description: string;
    tags: string[];
    diagnostics: {
      per_category_ap_area_all_maxdet100: Record<string, number>;
      recall_per_iou_area_all_maxdet100: number[];
    };
  };
}

export function cocoCaseNames(): string[] {
  if (!cocoEvalDir) return [];
  return readdirSync(cocoEvalDir)
    .filter((n) => n.startsWith('case_'))
    .sort();
}

export function loadCocoCase(name: string): CocoCase {
  const read = (f: string) => JSON.parse(readFileSync(join(cocoEvalDir!, name, f), 'utf8'));
  return {
    name,
    gt: read('gt.json'),
    dt: read('dt.json'),
    expected: read('expected.json'),
    meta: read('meta.json'),
  };
}
