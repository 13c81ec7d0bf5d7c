import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { checkArrows, importsOf } from '../src/check.mjs';

const CHECK = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'check.mjs');

// A tiny workspace laid out like the real one: an app, two packages, core and a tooling package,
// every arrow pointing the right way. Each test plants one violation in a fresh copy.
function tree(extra = {}) {
  const root = mkdtempSync(join(tmpdir(), 'bmc-arrows-'));
  const files = {
    'pnpm-workspace.yaml':
      'packages:\n  - packages/*\n  - apps/*\n  - tooling/*\n\nallowBuilds:\n  x: false\n',
    'package.json': { name: 'root', private: true, devDependencies: { vitest: '4', typescript: '5' } },
    'packages/core/package.json': { name: '@x/core', exports: { '.': './dist/index.js' } },
    'packages/core/src/index.ts': 'export const one = 1;\n',
    'packages/a/package.json': {
      name: '@x/a',
      exports: { '.': './dist/index.js', './extra': './dist/extra.js' },
      dependencies: { '@x/core': 'workspace:*', protobufjs: '8' },
      devDependencies: { '@x/utils': 'workspace:*', sharp: '1' },
    },
    'packages/a/src/index.ts':
      "import { one } from '@x/core';\nimport type { Sharp } from 'sharp';\nimport protobuf from 'protobufjs/light.js';\nexport { protobuf, one };\nexport type S = Sharp;\n",
    'packages/a/test/a.test.ts':
      "import { readFileSync } from 'node:fs';\nimport sharp from 'sharp';\nimport { it } from 'vitest';\nimport { fixture } from '@x/utils';\nimport { one } from '../src/index.js';\n",
    'packages/b/package.json': {
      name: '@x/b',
      exports: { '.': './dist/index.js' },
      dependencies: { '@x/a': 'workspace:*', '@x/core': 'workspace:*' },
    },
    'packages/b/src/index.ts':
      "import { protobuf } from '@x/a';\nimport { extra } from '@x/a/extra';\n// import x from '../../../apps/app/src/main.js' (a comment, not an import)\nexport const s = 'require(\"@x/app\")';\n",
    'apps/app/package.json': {
      name: '@x/app',
      private: true,
      dependencies: { '@x/a': 'workspace:*', '@x/b': 'workspace:*', '@x/core': 'workspace:*' },
    },
    'apps/app/src/main.ts': "import { s } from '@x/b';\nconst a = await import('@x/a');\n",
    'apps/app/bench/step.bench.mjs': "import { s } from '@x/b';\n",
    'tooling/utils/package.json': { name: '@x/utils', private: true, exports: { '.': './src/index.mjs' } },
    'tooling/utils/src/index.mjs': 'export const fixture = 1;\n',
    ...extra,
  };
  for (const [path, content] of Object.entries(files)) {
    if (content === null) continue;
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(
      join(root, path),
      typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`,
    );
  }
  roots.push(root);
  return root;
}
const roots = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

const found = (root) =>
  checkArrows(root).violations.map((v) => `${v.file}${v.line ? `:${v.line}` : ''} ${v.rule}`);

describe('arrows checker on a tiny fake workspace', () => {
  it('passes a tree whose arrows all point apps -> packages -> core', () => {
    const r = checkArrows(tree());
    expect(r.violations).toEqual([]);
    expect(r.packages).toBe(5);
    expect(r.files).toBe(7);
  });

  it('catches a package importing an app (by name and by relative path) and an app depended on', () => {
    const root = tree({
      'packages/b/src/index.ts':
        "import { x } from '@x/app';\nimport { y } from '../../../apps/app/src/main.js';\n",
      'packages/b/package.json': {
        name: '@x/b',
        dependencies: { '@x/app': 'workspace:*' },
      },
    });
    expect(found(root)).toEqual([
      'packages/b/package.json app-import',
      'package.json cycle', // @x/app -> @x/b -> @x/app
      'packages/b/src/index.ts:1 app-import',
      'packages/b/src/index.ts:2 app-import',
    ]);
  });

  it('catches core importing a package (a wrong-way arrow) and the cycle it closes', () => {
    const root = tree({
      'packages/core/package.json': { name: '@x/core', dependencies: { '@x/a': 'workspace:*' } },
      'packages/core/src/index.ts': "export { protobuf } from '@x/a';\n",
    });
    expect(found(root)).toEqual([
      'packages/core/package.json layer',
      'package.json cycle',
      'packages/core/src/index.ts:1 layer',
    ]);
  });

  it("catches a bench reaching into another package's dist by relative path", () => {
    const root = tree({
      'apps/app/bench/step.bench.mjs': "import { one } from '../../../packages/core/dist/index.js';\n",
    });
    expect(found(root)).toEqual(['apps/app/bench/step.bench.mjs:1 relative']);
  });

  it('catches a deep dist/ or src/ path that is not in the package exports (an exported subpath passes)', () => {
    const root = tree({
      'packages/b/src/index.ts':
        "import { extra } from '@x/a/extra';\nimport { p } from '@x/a/dist/index.js';\nexport * from '@x/a/src/index.ts';\n",
    });
    expect(found(root)).toEqual([
      'packages/b/src/index.ts:2 not-exported',
      'packages/b/src/index.ts:3 not-exported',
    ]);
  });

  it('catches a dependency used without being declared, and runtime code relying on a devDependency', () => {
    const root = tree({
      'packages/b/src/index.ts': "import fastify from 'fastify';\nconst c = require('@x/core');\n",
      'packages/a/src/index.ts': "import sharp from 'sharp';\nimport type { T } from 'sharp';\n",
      // vitest is the root's devDependency: fine in a test, not in published code.
      'packages/core/src/index.ts': "import { it } from 'vitest';\n",
    });
    expect(found(root)).toEqual([
      'packages/a/src/index.ts:1 undeclared',
      'packages/b/src/index.ts:1 undeclared',
      'packages/core/src/index.ts:1 undeclared',
    ]);
  });

  it('the command prints the graph and exits 1 with file:line: rule: message on a violation', () => {
    const clean = spawnSync(process.execPath, [CHECK, tree()], { encoding: 'utf8' });
    expect(clean.status).toBe(0);
    expect(clean.stdout).toMatch(/^app {5}@x\/app -> @x\/a, @x\/b, @x\/core$/m);
    expect(clean.stdout).toMatch(/^arrows: ok \(5 packages, 7 files, \d+ imports\)$/m);
    const bad = spawnSync(
      process.execPath,
      [CHECK, tree({ 'packages/core/src/index.ts': "import { s } from '../../b/src/index.js';\n" })],
      { encoding: 'utf8' },
    );
    expect(bad.status).toBe(1);
    expect(bad.stdout).toContain(
      "packages/core/src/index.ts:1: relative: '../../b/src/index.js' reaches into @x/b by relative path",
    );
    expect(bad.stdout).toMatch(/^arrows: 1 violation\(s\)/m);
  });
});

describe('importsOf reads module specifiers with the TypeScript parser', () => {
  it('finds static, re-export, dynamic, require and require.resolve specifiers; ignores comments and strings', () => {
    const text = [
      "import a from 'a';",
      "import type { B } from 'b';",
      "import { type C } from 'c';",
      "export { d } from 'd';",
      "export type { E } from 'e';",
      "const f = await import('f');",
      "const g = require('g');",
      "const h = require.resolve('h');",
      "type I = import('i').I;",
      "// import j from 'j';",
      'const k = "import k from \'k\'";',
      "import 'l';",
    ].join('\n');
    expect(importsOf('x.ts', text)).toEqual([
      { spec: 'a', line: 1, typeOnly: false },
      { spec: 'b', line: 2, typeOnly: true },
      { spec: 'c', line: 3, typeOnly: true },
      { spec: 'd', line: 4, typeOnly: false },
      { spec: 'e', line: 5, typeOnly: true },
      { spec: 'f', line: 6, typeOnly: false },
      { spec: 'g', line: 7, typeOnly: false },
      { spec: 'h', line: 8, typeOnly: false },
      { spec: 'i', line: 9, typeOnly: true },
      { spec: 'l', line: 12, typeOnly: false },
    ]);
  });
});
