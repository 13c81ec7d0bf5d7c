#!/usr/bin/env node
// Installs the published form of the bmc packages into a project outside the workspace and
// checks that a downstream user gets working code and types (issue 11):
//   1. `pnpm pack` each package (pnpm rewrites workspace:* to real versions);
//      every `exports` target and `main`/`types` must be inside the tarball;
//   2. a fresh project under os.tmpdir() depends on the tarballs through `file:` plus the npm
//      packages the examples use, installed with `npm install --ignore-scripts` (no workspace
//      links, no native downloads); exactly one copy of @tensorflow/tfjs-core is installed and
//      `npm ls --all` finds no missing or invalid dependency; a second, lean project holds only
//      the packages that must work without TensorFlow.js (no @tensorflow package may be installed
//      there, so every tfjs peer they declare must be optional) and imports them;
//   3. every program in examples/ runs there with node and prints what it should;
//   4. browser bundles built with Vite from the installed packages: no Node built-ins,
//      tree-shaking (an ATSS-only bundle holds no OTA, ...), sizes (browser.mjs);
//   5. a .ts file importing every entry point type-checks with the repo's tsc under
//      moduleResolution node16 and bundler (strict, no skipLibCheck);
//   6. `changeset status` + `changeset version` in a temporary copy give the expected versions and
//      CHANGELOG entries (changesets.mjs).
// Prints `N passed, N failed` and exits non-zero on any failure.
//
//   node tooling/pack-check/check.mjs [--keep] [@bmc/pkg ...]
//
// Needs the packages built (dist/) and the npm registry (or a warm npm cache).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkBrowserBundles } from './browser.mjs';
import { checkChangesets } from './changesets.mjs';

const started = performance.now();
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const keep = args.includes('--keep');
const requested = args.filter((a) => !a.startsWith('--'));
// What the examples need from the registry, pinned as in STACK.md.
const REGISTRY_DEPS = { '@tensorflow/tfjs': '4.22.0', 'onnxruntime-web': '1.30.0' };
// Packages (and entry points) that must work without TensorFlow.js installed.
const WITHOUT_TFJS = {
  '@bmc/core': ['@bmc/core'],
  '@bmc/assigners': ['@bmc/assigners'],
  '@bmc/metrics': ['@bmc/metrics', '@bmc/metrics/model-stats'],
  '@bmc/export': ['@bmc/export/metadata'],
};
const COCO_CASE =
  process.env.BMC_COCO_CASE ?? resolve(repo, '..', 'shared', 'fixtures', 'coco-eval', 'case_000');

const results = [];
function record(name, ok, detail = '') {
  results.push({ name, ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}
function secs() {
  return ((performance.now() - started) / 1000).toFixed(1);
}
function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}
function tail(text, n = 15) {
  return text.trim().split('\n').slice(-n).join('\n    ');
}

// --- locate packages ---------------------------------------------------------------------------
const dirs = new Map();
for (const group of ['packages', 'apps']) {
  const root = join(repo, group);
  if (!existsSync(root)) continue;
  for (const d of readdirSync(root)) {
    const pj = join(root, d, 'package.json');
    if (existsSync(pj)) dirs.set(JSON.parse(readFileSync(pj, 'utf8')).name, join(root, d));
  }
}

// Default: every publishable (non-private) package under packages/.
const PACKAGES =
  requested.length > 0
    ? requested
    : [...dirs]
        .filter(([, d]) => dirname(d) === join(repo, 'packages'))
        .filter(([, d]) => !JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')).private)
        .map(([n]) => n)
        .sort();

const work = mkdtempSync(join(tmpdir(), 'bmc-pack-check-'));
const tarDir = join(work, 'tarballs');
const proj = join(work, 'project');
mkdirSync(tarDir);
mkdirSync(proj);
console.log(`work dir: ${work}`);

// --- 1. pack -----------------------------------------------------------------------------------
const tarballs = new Map();
const manifests = new Map();
for (const name of PACKAGES) {
  const dir = dirs.get(name);
  if (!dir) {
    record(`pack ${name}`, false, 'no such workspace package');
    continue;
  }
  const before = new Set(readdirSync(tarDir));
  const r = run('pnpm', ['pack', '--pack-destination', tarDir], { cwd: dir });
  const made = readdirSync(tarDir).filter((f) => !before.has(f) && f.endsWith('.tgz'));
  if (r.code !== 0 || made.length !== 1) {
    record(`pack ${name}`, false, tail(r.out));
    continue;
  }
  const tgz = join(tarDir, made[0]);
  const files = new Set(
    execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, '')),
  );
  const manifest = JSON.parse(
    execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }),
  );
  const problems = [];
  const targets = new Set([manifest.main, manifest.types, manifest.module].filter(Boolean));
  const walk = (v) => {
    if (typeof v === 'string') targets.add(v);
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(manifest.exports);
  for (const t of targets) {
    if (t.includes('*')) continue;
    if (!files.has(t.replace(/^\.\//, ''))) problems.push(`missing ${t}`);
  }
  for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
    for (const [dep, spec] of Object.entries(manifest[field] ?? {})) {
      if (String(spec).startsWith('workspace:')) problems.push(`${field}.${dep} is still ${spec}`);
    }
  }
  if (!files.has('README.md')) problems.push('no README.md');
  tarballs.set(name, tgz);
  manifests.set(name, manifest);
  record(`pack ${name}`, problems.length === 0, problems.join('; ') || `${made[0]}, ${files.size} files`);
}

// Dependencies between bmc packages must point to packages in this check, else npm would look
// for them in the registry (where they are not published yet).
for (const [name, m] of manifests) {
  const missing = Object.keys(m.dependencies ?? {}).filter((d) => d.startsWith('@bmc/') && !tarballs.has(d));
  if (missing.length > 0)
    record(`deps ${name}`, false, `depends on ${missing.join(', ')}, not packed: add to the list`);
}

// --- 2. install --------------------------------------------------------------------------------
const deps = { ...REGISTRY_DEPS };
// The models check loads the shipped ONNX file the way a user would (@bmc/infer brings it too).
if (tarballs.has('@bmc/models')) deps['onnxruntime-node'] = '1.30.0';
for (const [name, tgz] of tarballs) deps[name] = `file:${tgz}`;
writeFileSync(
  join(proj, 'package.json'),
  `${JSON.stringify({ name: 'bmc-pack-check', private: true, type: 'module', dependencies: deps }, null, 2)}\n`,
);
const inst = run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], {
  cwd: proj,
});
record('npm install', inst.code === 0, inst.code === 0 ? `${secs()} s so far` : tail(inst.out));

if (inst.code === 0) {
  // No workspace symlinks: every @bmc package is a real directory from its tarball.
  for (const name of tarballs.keys()) {
    const p = join(proj, 'node_modules', name, 'package.json');
    const lst = run('find', [join(proj, 'node_modules', name), '-maxdepth', '0', '-type', 'l']);
    if (!existsSync(p) || lst.stdout.trim()) record(`installed ${name}`, false, 'missing or a symlink');
  }
  // One tfjs-core: a second copy means two kernel registries and silently unregistered backends.
  const cores = run('find', [join(proj, 'node_modules'), '-path', '*/@tensorflow/tfjs-core/package.json'])
    .stdout.split('\n')
    .filter(Boolean);
  record(
    'single @tensorflow/tfjs-core',
    cores.length === 1,
    `${cores.length} copies${cores.length > 1 ? `: ${cores.join(', ')}` : ''}`,
  );
  // Missing, invalid (a peer range not met) or extraneous packages make `npm ls` fail.
  const ls = run('npm', ['ls', '--all'], { cwd: proj });
  record(
    'npm ls --all',
    ls.code === 0,
    ls.code === 0
      ? ''
      : tail(
          ls.out
            .split('\n')
            .filter((l) => /invalid|missing|extraneous|ERR/.test(l))
            .join('\n'),
        ),
  );
  const extra = run('find', [
    join(proj, 'node_modules'),
    '-path',
    '*/node_modules/*/node_modules/@bmc/*/package.json',
  ])
    .stdout.split('\n')
    .filter(Boolean);
  record('single copy of each @bmc package', extra.length === 0, extra.join(', '));
}

// Every bare import in the shipped JavaScript names a declared dependency or peer (the workspace
// hoists undeclared ones, and so may the test project: this is the check that does not rely on
// what happens to be installed).
function listJs(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(m?js|cjs)$/.test(e.name))
    .map((e) => join(e.parentPath ?? e.path, e.name));
}
const IMPORT_PATTERNS = [
  /\bfrom\s*['"]([^'"]+)['"]/g,
  /^\s*import\s*['"]([^'"]+)['"]/gm,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire\w*\(\s*['"]([^'"]+)['"]\s*\)/g,
];
if (inst.code === 0) {
  for (const [name, m] of manifests) {
    const declared = new Set(
      ['dependencies', 'peerDependencies', 'optionalDependencies'].flatMap((f) => Object.keys(m[f] ?? {})),
    );
    const undeclared = new Set();
    for (const file of listJs(join(proj, 'node_modules', name, 'dist'))) {
      const text = readFileSync(file, 'utf8');
      for (const re of IMPORT_PATTERNS) {
        for (const [, spec] of text.matchAll(re)) {
          if (spec.startsWith('.') || spec.startsWith('/') || isBuiltin(spec)) continue;
          const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
          if (pkg !== name && !declared.has(pkg)) undeclared.add(pkg);
        }
      }
    }
    record(
      `declared deps ${name}`,
      undeclared.size === 0,
      undeclared.size ? `imports ${[...undeclared].join(', ')} without declaring it` : '',
    );
  }
}

// A lean project with only the packages that do not need TensorFlow.js: npm installs required
// peers by itself, so a required tfjs peer shows up here as an installed @tensorflow package.
if (inst.code === 0) {
  const lean = join(work, 'without-tfjs');
  const wanted = Object.keys(WITHOUT_TFJS).filter((n) => tarballs.has(n));
  const leanDeps = Object.fromEntries(wanted.map((n) => [n, `file:${tarballs.get(n)}`]));
  mkdirSync(lean);
  writeFileSync(
    join(lean, 'package.json'),
    `${JSON.stringify({ name: 'bmc-without-tfjs', private: true, type: 'module', dependencies: leanDeps }, null, 2)}\n`,
  );
  const t0 = performance.now();
  const li = run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], {
    cwd: lean,
  });
  if (li.code !== 0) {
    record('without tfjs: npm install', false, tail(li.out));
  } else {
    const tfjs = existsSync(join(lean, 'node_modules', '@tensorflow'))
      ? readdirSync(join(lean, 'node_modules', '@tensorflow')).map((d) => `@tensorflow/${d}`)
      : [];
    const specs = wanted.flatMap((n) => WITHOUT_TFJS[n]);
    const code = `for (const s of ${JSON.stringify(specs)}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error(s + ': no exports'); }`;
    const r = run(process.execPath, ['--input-type=module', '-e', code], { cwd: lean, timeout: 60_000 });
    const problems = [];
    if (tfjs.length > 0) problems.push(`npm installed ${tfjs.join(', ')} (a required peer?)`);
    if (r.code !== 0) problems.push(tail(r.out));
    record(
      `without tfjs: ${wanted.join(', ')}`,
      problems.length === 0,
      problems.join('; ') || `${specs.join(', ')} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  }
}

// --- 3. runtime imports and examples ---------------------------------------------------------
// Every entry point loads in plain Node from the installed project (catches files missing from a
// tarball and undeclared dependencies, which the workspace's hoisting would hide).
function entryPoints(name, m) {
  return Object.keys(m.exports ?? { '.': null })
    .filter((k) => !k.endsWith('.json') && !k.includes('*'))
    .map((sp) => (sp === '.' ? name : `${name}/${sp.slice(2)}`));
}
if (inst.code === 0) {
  for (const [name, m] of manifests) {
    const specs = entryPoints(name, m);
    const code = `for (const s of ${JSON.stringify(specs)}) { const m = await import(s); if (Object.keys(m).length === 0) throw new Error(s + ': no exports'); }`;
    const r = run(process.execPath, ['--input-type=module', '-e', code], { cwd: proj, timeout: 60_000 });
    record(`import ${name}`, r.code === 0, r.code === 0 ? specs.join(', ') : tail(r.out));
  }
}

// @bmc/models from its tarball: small enough, and modelPath() is an ONNX file that onnxruntime-node
// (installed with @bmc/infer) loads and runs; checkpointDir() holds a checkpoint manifest.
if (inst.code === 0 && tarballs.has('@bmc/models')) {
  const mb = statSync(tarballs.get('@bmc/models')).size / 2 ** 20;
  const code = `
    import { existsSync } from 'node:fs';
    import { join } from 'node:path';
    import * as ort from 'onnxruntime-node';
    import { checkpointDir, listModels, modelPath } from '@bmc/models';
    if (!modelPath().startsWith(process.cwd())) throw new Error('modelPath() outside the project: ' + modelPath());
    if (!existsSync(join(checkpointDir(), 'manifest.json'))) throw new Error('no checkpoint manifest');
    const s = await ort.InferenceSession.create(modelPath(), { intraOpNumThreads: 1 });
    const x = new ort.Tensor('float32', new Float32Array(3 * 64 * 64), [1, 3, 64, 64]);
    const out = await s.run({ [s.inputNames[0]]: x });
    console.log(listModels().map((m) => m.name).join(','), Object.keys(out).length);`;
  const r = run(process.execPath, ['--input-type=module', '-e', code], { cwd: proj, timeout: 60_000 });
  const problems = [];
  if (mb >= 20) problems.push(`tarball ${mb.toFixed(1)} MB (limit 20)`);
  if (r.code !== 0) problems.push(tail(r.out));
  record(
    '@bmc/models: modelPath() loads in onnxruntime-node',
    problems.length === 0,
    problems.join('; ') || `${r.stdout.trim()} outputs; tarball ${mb.toFixed(1)} MB`,
  );
}

// --- examples -------------------------------------------------------------------------------
function example(file, argv, expect) {
  const script = join(proj, 'examples', file);
  if (!existsSync(script)) return record(`example ${file}`, false, 'not found');
  const t0 = performance.now();
  const r = run(process.execPath, [script, ...argv], { cwd: proj, timeout: 120_000 });
  const ms = (performance.now() - t0).toFixed(0);
  if (r.code !== 0) return record(`example ${file}`, false, `exit ${r.code}\n    ${tail(r.out)}`);
  const why = expect(r.stdout);
  record(`example ${file}`, why === true, why === true ? `${ms} ms` : `${why}\n    ${tail(r.out)}`);
  return r.stdout;
}

if (inst.code === 0) {
  mkdirSync(join(proj, 'examples'));
  for (const f of readdirSync(join(repo, 'examples'))) {
    if (f.endsWith('.mjs')) copyFileSync(join(repo, 'examples', f), join(proj, 'examples', f));
  }
  const has = (n) => tarballs.has(n);

  if (has('@bmc/metrics')) {
    if (existsSync(join(COCO_CASE, 'expected.json'))) {
      const expected = JSON.parse(readFileSync(join(COCO_CASE, 'expected.json'), 'utf8')).stats;
      example('coco-eval.mjs', [join(COCO_CASE, 'gt.json'), join(COCO_CASE, 'dt.json')], (out) => {
        const got = [...out.matchAll(/^(AP|AR)\S*\s+(-?[\d.]+)$/gm)].map((m) => Number(m[2]));
        if (got.length !== 12) return `expected 12 stats lines, got ${got.length}`;
        // printed with 4 decimals; pycocotools' own numbers are the reference
        const bad = got.findIndex((v, i) => Math.abs(v - expected[i]) > 5.1e-5);
        return bad < 0 ? true : `stat ${bad}: ${got[bad]} vs pycocotools ${expected[bad]}`;
      });
    } else {
      console.log(`SKIP example coco-eval.mjs: no fixture at ${COCO_CASE} (set BMC_COCO_CASE)`);
    }
  }
  if (has('@bmc/assigners') && has('@bmc/core')) {
    example('atss-assign.mjs', [], (out) => {
      const pos = [...out.matchAll(/^gt \d+: (\d+) positives/gm)].map((m) => Number(m[1]));
      if (pos.length !== 3) return `expected 3 'gt N: K positives' lines, got ${pos.length}`;
      return pos.every((k) => k > 0) ? true : 'a ground truth got no positives';
    });
  }
  if (has('@bmc/assigners') && has('@bmc/core')) {
    example('atss-loss.mjs', [], (out) => {
      const m = /^loss: ([\d.]+) -> ([\d.]+)/m.exec(out);
      if (!m) return 'no "loss: a -> b" line';
      if (!(Number(m[2]) < Number(m[1]))) return 'the loss did not decrease';
      return /^tensors leaked: 0$/m.test(out) ? true : 'tensors leaked';
    });
  }
  if (has('@bmc/export')) {
    const onnx = join(work, 'tiny.onnx');
    const out = example('export-onnx.mjs', [onnx], (o) =>
      /^wrote /m.test(o) && existsSync(onnx) ? true : 'no "wrote" line or no file',
    );
    if (out) {
      // 64x64 input, one stride-2 conv, 4 filters, NHWC output as tfjs.
      example('run-onnx-web.mjs', [onnx], (o) =>
        /^output \S+: \[1, 32, 32, 4\]$/m.test(o) ? true : 'expected an output of shape [1, 32, 32, 4]',
      );
    }
  }
}

// --- 4. browser bundles ------------------------------------------------------------------------
if (inst.code === 0) {
  try {
    await checkBrowserBundles({ proj, record, installed: (n) => tarballs.has(n) });
  } catch (e) {
    record('browser bundles', false, String(e?.stack ?? e));
  }
}

// --- 5. types ----------------------------------------------------------------------------------
if (inst.code === 0) {
  const lines = [];
  let i = 0;
  for (const [name, m] of manifests) {
    for (const spec of entryPoints(name, m)) {
      lines.push(`import * as m${i} from '${spec}';`, `export const k${i} = Object.keys(m${i}).length;`);
      i++;
    }
  }
  // Types must be real, not `any`: a wrong call has to be an error.
  const typed = {
    '@bmc/core': [
      `import { generateAnchors, panN2N5AnchorConfig } from '@bmc/core';`,
      'export const anchorCount: number = generateAnchors(panN2N5AnchorConfig(), 64, 64).levelCounts.length;',
      '// @ts-expect-error the height is a number',
      `generateAnchors(panN2N5AnchorConfig(), '64', 64);`,
    ],
    '@bmc/assigners': [
      `import { AtssAssigner } from '@bmc/assigners';`,
      '// @ts-expect-error assign needs anchors and ground truth',
      'new AtssAssigner().assign({});',
    ],
    '@bmc/metrics': [
      `import { evaluateCoco } from '@bmc/metrics';`,
      'export const stats = (r: ReturnType<typeof evaluateCoco>): number[] => r.stats;',
      '// @ts-expect-error results are a list',
      'evaluateCoco({ images: [], annotations: [], categories: [] }, 3);',
    ],
    '@bmc/export': [
      `import { exportOnnx } from '@bmc/export';`,
      'export const bytesOf = (r: ReturnType<typeof exportOnnx>): Uint8Array => r.bytes;',
      '// @ts-expect-error exportOnnx takes a tfjs model',
      'exportOnnx(42);',
    ],
  };
  for (const name of manifests.keys()) lines.push(...(typed[name] ?? []));
  writeFileSync(join(proj, 'check-types.ts'), `${lines.join('\n')}\n`);
  const tsc = join(repo, 'node_modules', '.bin', 'tsc');
  // No skipLibCheck, so errors in our .d.ts files show; tfjs 4.22's own declarations have errors
  // under strict (hash_util's `Long`, tfjs-layers' PyJsonValue index types), which are not ours:
  // those are counted and reported but do not fail the check.
  const common = [
    '--noEmit',
    '--strict',
    '--target',
    'es2022',
    '--lib',
    'es2022,dom',
    '--types',
    'node',
    '--typeRoots',
    join(repo, 'node_modules', '@types'),
    'check-types.ts',
  ];
  for (const [label, mod, res] of [
    ['node16', 'node16', 'node16'],
    ['bundler', 'esnext', 'bundler'],
  ]) {
    const r = run(tsc, ['--module', mod, '--moduleResolution', res, ...common], { cwd: proj });
    const ours = [];
    let thirdParty = 0;
    for (const m of r.out.matchAll(/^(\S[^(\n]*)\(\d+,\d+\): error [^\n]*/gm)) {
      if (m[1].startsWith('node_modules/@tensorflow/')) thirdParty++;
      else ours.push(m[0]);
    }
    const ok = r.code === 0 || (ours.length === 0 && thirdParty > 0);
    const note = thirdParty > 0 ? ` (ignored ${thirdParty} errors inside @tensorflow's own .d.ts)` : '';
    record(
      `types (${label})`,
      ok,
      ok ? `${i} entry points${note}` : `${ours.slice(0, 20).join('\n    ') || tail(r.out, 25)}`,
    );
  }
}

// --- 6. release dry run --------------------------------------------------------------------------
try {
  checkChangesets({ record, keep });
} catch (e) {
  record('changeset version (dry run)', false, String(e?.stack ?? e));
}

// --- summary -----------------------------------------------------------------------------------
const failed = results.filter((r) => !r.ok).length;
if (keep || failed > 0) console.log(`kept ${work}`);
else rmSync(work, { recursive: true, force: true });
console.log(`${results.length - failed} passed, ${failed} failed (${secs()} s)`);
process.exit(failed > 0 ? 1 : 0);
