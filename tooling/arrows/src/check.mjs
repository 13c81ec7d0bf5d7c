#!/usr/bin/env node
// The dependency arrows of the workspace (DESIGN.md's layout): apps -> packages -> core, and
// nothing the other way. Reads every workspace package.json and every import / export-from /
// import() / require() in the packages' source, test, bench, script and config files (TypeScript's
// own parser, so comments and strings that merely look like imports do not count), and fails on:
//   app-import     an app is imported by, or declared as a dependency of, anything else;
//   layer          core imports another package, a package imports an app, tooling imports an app;
//   cycle          workspace packages that depend on each other in a ring;
//   relative       a file reaches into another workspace package by relative path;
//   not-exported   a `@bmc/x/<sub>` path (dist/, src/, ...) that is not in x's package.json `exports`;
//   undeclared     a package is imported without being declared in the importer's package.json
//                  (files outside src/ and bin/ may also use the root's devDependencies: vitest,
//                  tsup, typescript); a published package's runtime code (src/, bin/; not
//                  `import type`) may not rely on a devDependency, which its users would not get.
//
//   node tooling/arrows/src/check.mjs [repo-root]      (pnpm arrows)
//
// Prints the package graph and `arrows: ok`, or each violation as `file:line: rule: message` and
// exits 1.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const ts = require('typescript');

const SOURCE = /\.(?:[cm]?[jt]sx?)$/;
const SKIP_DIRS = new Set(['node_modules', 'dist', 'coverage', '.turbo', '.git']);
const BUILTINS = new Set(builtinModules);

/** Workspace package folders from pnpm-workspace.yaml (`- dir/*` and `- dir` entries). */
function workspaceDirs(root) {
  const yaml = readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8');
  const dirs = [];
  let inPackages = false;
  for (const line of yaml.split('\n')) {
    if (/^packages:\s*$/.test(line)) {
      inPackages = true;
      continue;
    }
    if (inPackages && /^\S/.test(line)) inPackages = false;
    const m = inPackages && line.match(/^\s*-\s*['"]?([^'"#\s]+)['"]?/);
    if (!m) continue;
    const pattern = m[1];
    if (pattern.endsWith('/*')) {
      const base = join(root, pattern.slice(0, -2));
      if (!existsSync(base)) continue;
      for (const d of readdirSync(base).sort()) {
        if (existsSync(join(base, d, 'package.json'))) dirs.push(join(base, d));
      }
    } else if (existsSync(join(root, pattern, 'package.json'))) {
      dirs.push(join(root, pattern));
    }
  }
  return dirs;
}

/** app, core, package or tooling, from where the package lives. */
function kindOf(root, dir, name) {
  const rel = relative(root, dir).split(sep);
  if (rel[0] === 'apps') return 'app';
  if (rel[0] === 'tooling') return 'tooling';
  if (name === '@bmc/core' || rel.join('/') === 'packages/core') return 'core';
  return 'package';
}

function readPackages(root) {
  const pkgs = [];
  for (const dir of workspaceDirs(root)) {
    const json = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    pkgs.push({
      dir,
      json,
      name: json.name,
      kind: kindOf(root, dir, json.name),
      deps: new Set([
        ...Object.keys(json.dependencies ?? {}),
        ...Object.keys(json.peerDependencies ?? {}),
        ...Object.keys(json.optionalDependencies ?? {}),
      ]),
      devDeps: new Set(Object.keys(json.devDependencies ?? {})),
    });
  }
  return pkgs;
}

function* sourceFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP_DIRS.has(entry.name)) continue;
    const p = join(dir, entry.name);
    if (entry.isDirectory()) {
      // A nested package (its own package.json) is checked as itself.
      if (!existsSync(join(p, 'package.json'))) yield* sourceFiles(p);
    } else if (SOURCE.test(entry.name) && !/\.bundled_[\w]+\.mjs$/.test(entry.name)) {
      yield p;
    }
  }
}

/** Every module specifier a file names, with its line and whether it is erased (type-only). */
export function importsOf(file, text = readFileSync(file, 'utf8')) {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out = [];
  const add = (lit, typeOnly) => {
    if (!lit || !ts.isStringLiteralLike(lit)) return;
    const line = sf.getLineAndCharacterOfPosition(lit.getStart(sf)).line + 1;
    out.push({ spec: lit.text, line, typeOnly });
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node)) {
      const c = node.importClause;
      const typeOnly =
        !!c &&
        (c.isTypeOnly ||
          (!c.name &&
            !!c.namedBindings &&
            ts.isNamedImports(c.namedBindings) &&
            c.namedBindings.elements.length > 0 &&
            c.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, typeOnly);
    } else if (ts.isExportDeclaration(node)) {
      add(node.moduleSpecifier, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isImportTypeNode(node)) {
      const a = node.argument;
      if (ts.isLiteralTypeNode(a)) add(a.literal, true);
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const isImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(callee) && callee.text === 'require';
      const isResolve =
        ts.isPropertyAccessExpression(callee) &&
        ts.isIdentifier(callee.expression) &&
        callee.expression.text === 'require' &&
        callee.name.text === 'resolve';
      if ((isImport || isRequire || isResolve) && node.arguments.length > 0) add(node.arguments[0], false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** `@scope/name/sub/path` -> [`@scope/name`, `./sub/path`]; `name/sub` -> [`name`, `./sub`]. */
function splitSpecifier(spec) {
  const parts = spec.split('/');
  const n = spec.startsWith('@') ? 2 : 1;
  const name = parts.slice(0, n).join('/');
  const sub = parts.length > n ? `./${parts.slice(n).join('/')}` : '.';
  return [name, sub];
}

/** Whether `sub` ('.' or './x') is a key of an `exports` map (with `*` patterns). */
function isExported(json, sub) {
  const exp = json.exports;
  if (exp === undefined) return true; // no exports map: Node allows any path
  if (typeof exp === 'string' || Array.isArray(exp)) return sub === '.';
  const keys = Object.keys(exp);
  if (!keys.some((k) => k.startsWith('.'))) return sub === '.'; // conditions only: the root
  return keys.some((k) => {
    if (k === sub) return true;
    const star = k.indexOf('*');
    if (star < 0) return k.endsWith('/') && sub.startsWith(k);
    return sub.startsWith(k.slice(0, star)) && sub.endsWith(k.slice(star + 1)) && sub.length >= k.length - 1;
  });
}

const ALLOWED = {
  // importer kind -> workspace kinds it may depend on
  app: new Set(['package', 'core', 'tooling']),
  package: new Set(['package', 'core', 'tooling']),
  core: new Set(['tooling']),
  tooling: new Set(['package', 'core', 'tooling']),
};

function layerMessage(from, to) {
  if (to.kind === 'app')
    return `${from.name} (${from.kind}) depends on the app ${to.name}: apps are imported by nothing`;
  return `${from.name} (${from.kind}) depends on ${to.name} (${to.kind}): arrows go apps -> packages -> core`;
}

function findCycles(pkgs, byName) {
  const edges = new Map(
    pkgs.map((p) => [p.name, [...p.deps, ...p.devDeps].filter((d) => byName.has(d) && d !== p.name)]),
  );
  const cycles = [];
  const state = new Map(); // 1 visiting, 2 done
  const stack = [];
  const visit = (n) => {
    state.set(n, 1);
    stack.push(n);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === 1) cycles.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 2);
  };
  for (const p of pkgs) if (!state.has(p.name)) visit(p.name);
  return cycles;
}

/** Checks the workspace at `root`; returns { packages, files, imports, violations, graph }. */
export function checkArrows(root) {
  root = resolve(root);
  const rootJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const rootDev = new Set([
    ...Object.keys(rootJson.devDependencies ?? {}),
    ...Object.keys(rootJson.dependencies ?? {}),
  ]);
  const pkgs = readPackages(root);
  const byName = new Map(pkgs.map((p) => [p.name, p]));
  const violations = [];
  const report = (file, line, rule, message) =>
    violations.push({ file: relative(root, file), line, rule, message });

  // package.json arrows
  for (const p of pkgs) {
    const pj = join(p.dir, 'package.json');
    for (const d of [...p.deps, ...p.devDeps]) {
      const t = byName.get(d);
      if (!t || t === p) continue;
      if (t.kind === 'app') report(pj, 0, 'app-import', `declares a dependency on the app ${t.name}`);
      else if (!ALLOWED[p.kind].has(t.kind)) report(pj, 0, 'layer', layerMessage(p, t));
    }
  }
  for (const c of findCycles(pkgs, byName)) {
    report(join(root, 'package.json'), 0, 'cycle', `workspace dependency cycle ${c.join(' -> ')}`);
  }

  let files = 0;
  let imports = 0;
  const owner = (abs) => {
    let best;
    for (const p of pkgs) {
      if ((abs === p.dir || abs.startsWith(p.dir + sep)) && (!best || p.dir.length > best.dir.length))
        best = p;
    }
    return best;
  };
  for (const p of pkgs) {
    for (const file of sourceFiles(p.dir)) {
      files++;
      const rel = relative(p.dir, file).split(sep);
      const runtimeCode = rel[0] === 'src' || rel[0] === 'bin';
      for (const { spec, line, typeOnly } of importsOf(file)) {
        imports++;
        if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('file:')) {
          const abs = spec.startsWith('file:') ? fileURLToPath(spec) : resolve(dirname(file), spec);
          const t = owner(abs);
          if (!t || t === p) continue;
          if (t.kind === 'app') {
            report(
              file,
              line,
              'app-import',
              `'${spec}' reaches into the app ${t.name}: apps are imported by nothing`,
            );
          } else {
            report(
              file,
              line,
              'relative',
              `'${spec}' reaches into ${t.name} by relative path: import it by name through a declared dependency`,
            );
          }
          continue;
        }
        if (spec.startsWith('node:') || BUILTINS.has(spec) || BUILTINS.has(spec.split('/')[0])) continue;
        if (/^[a-z][a-z0-9+.-]*:/i.test(spec)) continue; // data:, https:, virtual: ...
        const [name, sub] = splitSpecifier(spec);
        const t = byName.get(name);
        if (t && t !== p) {
          if (t.kind === 'app') {
            report(file, line, 'app-import', `imports the app ${t.name}: apps are imported by nothing`);
            continue;
          }
          if (!ALLOWED[p.kind].has(t.kind)) report(file, line, 'layer', layerMessage(p, t));
        }
        if (t && !isExported(t.json, sub)) {
          report(
            file,
            line,
            'not-exported',
            `'${spec}': ${sub} is not in ${name}'s package.json exports (${Object.keys(t.json.exports ?? {}).join(', ')})`,
          );
        }
        if (t === p) continue; // self-reference by name
        const declared = p.deps.has(name) || p.devDeps.has(name) || (!runtimeCode && rootDev.has(name));
        if (!declared) {
          report(
            file,
            line,
            'undeclared',
            `imports '${name}', which ${p.name}'s package.json does not declare`,
          );
        } else if (
          runtimeCode &&
          !typeOnly &&
          p.json.private !== true &&
          !p.deps.has(name) &&
          p.devDeps.has(name)
        ) {
          report(
            file,
            line,
            'undeclared',
            `runtime code imports '${name}', a devDependency of the published ${p.name}: its users would not get it`,
          );
        }
      }
    }
  }
  const graph = pkgs.map((p) => ({
    name: p.name,
    kind: p.kind,
    deps: [...p.deps].filter((d) => byName.has(d)).sort(),
  }));
  return { packages: pkgs.length, files, imports, violations, graph };
}

function main() {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..'));
  const r = checkArrows(root);
  const order = { app: 0, package: 1, core: 2, tooling: 3 };
  for (const g of [...r.graph].sort(
    (a, b) => order[a.kind] - order[b.kind] || a.name.localeCompare(b.name),
  )) {
    console.log(`${g.kind.padEnd(7)} ${g.name}${g.deps.length ? ` -> ${g.deps.join(', ')}` : ''}`);
  }
  for (const v of r.violations)
    console.log(`${v.file}${v.line ? `:${v.line}` : ''}: ${v.rule}: ${v.message}`);
  const summary = `${r.packages} packages, ${r.files} files, ${r.imports} imports`;
  if (r.violations.length) {
    console.log(`arrows: ${r.violations.length} violation(s) (${summary})`);
    process.exitCode = 1;
  } else {
    console.log(`arrows: ok (${summary})`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main();
