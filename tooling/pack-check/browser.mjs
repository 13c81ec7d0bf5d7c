#!/usr/bin/env node
// Browser bundles of the packed packages (issue 11), built with Vite from the tarballs installed in
// pack-check's fresh project: client build (`build.ssr = false`, library mode, browser resolve
// conditions), `minify: false` so that names and messages can be looked for, `@tensorflow/*` left
// external (not our code; it keeps the builds to well under a second each). For each bundle:
//   - no Node built-in: Vite's "externalized for browser compatibility" warning, a
//     `__vite-browser-external` stub, or an import/require of `fs`, `node:path`, ... all fail it;
//   - tree-shaking: a bundle importing one feature must not contain the markers of another
//     (ATSS without OTA/PAA, COCO evaluation without reports/SVG/FPS, IoU + NMS without the tfjs
//     tensor helpers or the backend loader); each marker must be present in the package's full
//     bundle, so a renamed function makes the check fail instead of pass vacuously;
//   - sizes (raw and gzip) are reported.
// Vite is the workspace's own (packages/infer's devDependency, 8.3.8), not installed into the project.
//
// Called by check.mjs; on its own, against a project kept with `check.mjs --keep`:
//   node tooling/pack-check/browser.mjs /tmp/bmc-pack-check-XXXX/project
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const repo = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

// One bundle per line. `entries`: what the entry module re-exports (every browser entry point of
// the package: the full bundle) or the code of a narrower consumer (`code`, with `forbid`: markers
// of the parts it must not pull in; `of` names the full bundle the markers must appear in).
const BUNDLES = [
  {
    name: '@bmc/core',
    entries: ['@bmc/core', '@bmc/core/tf', '@bmc/core/backend'],
  },
  {
    name: '@bmc/core: boxIou + nms only',
    of: '@bmc/core',
    code: `import { boxIou, nms } from '@bmc/core';\nexport const keep = (b, s) => nms(b, s, 0.5);\nexport { boxIou };`,
    // the tfjs tensor helpers (@bmc/core/tf), the backend loader, anchors and the box coder
    forbid: [
      '@tensorflow/',
      'alignedIouTensor',
      'decodeDeltasTensor',
      'initBackend',
      'generateAnchors',
      'BoxCoder',
    ],
  },
  {
    name: '@bmc/assigners',
    entries: ['@bmc/assigners'],
  },
  {
    name: '@bmc/assigners: ATSS only',
    of: '@bmc/assigners',
    code: `import { AtssAssigner } from '@bmc/assigners';\nexport const assigner = new AtssAssigner({ topK: 9 });`,
    // OTA (class, its error prefix, its Sinkhorn solver), PAA, MaxIoU, the SVG renderer
    forbid: [
      'OtaAssigner',
      'OTA: ',
      'sinkhorn: eps',
      'PaaAssigner',
      'fitGmm1d',
      'MaxIoUAssigner',
      'renderAssignment',
    ],
  },
  {
    name: '@bmc/metrics',
    entries: ['@bmc/metrics', '@bmc/metrics/model-stats'],
  },
  {
    name: '@bmc/metrics: evaluateCoco only',
    of: '@bmc/metrics',
    code: `import { evaluateCoco } from '@bmc/metrics';\nexport const evaluate = (gt, dt) => evaluateCoco(gt, dt).stats;`,
    // best-F1 tables, PR curves and their SVG, reports, FPS, model statistics
    forbid: ['bestF1Sweep', 'prCurves', 'prCurvesSvg', 'reportToMarkdown', 'measureFps', 'modelStats'],
  },
  {
    // What the viewer reads a model with; must not need TensorFlow.js (an optional peer).
    name: '@bmc/export/metadata',
    entries: ['@bmc/export/metadata'],
    forbid: ['@tensorflow/'],
  },
  {
    name: '@bmc/backbone/safetensors',
    entries: ['@bmc/backbone/safetensors'],
    forbid: ['@tensorflow/'],
  },
  {
    name: '@bmc/heads-iou/postprocess',
    entries: ['@bmc/heads-iou/postprocess'],
    forbid: ['@tensorflow/'],
  },
];

const IMPORT_PATTERNS = [
  /\bfrom\s*['"]([^'"]+)['"]/g,
  /^\s*import\s*['"]([^'"]+)['"]/gm,
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
  /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
];

function kb(n) {
  return `${(n / 1024).toFixed(1)} kB`;
}

function loadVite() {
  const req = createRequire(join(repo, 'packages', 'infer', 'package.json'));
  const version = JSON.parse(readFileSync(req.resolve('vite/package.json'), 'utf8')).version;
  return import(req.resolve('vite')).then((vite) => ({ vite, version }));
}

async function buildOne(vite, dir, id, source) {
  const entry = join(dir, `${id}.entry.mjs`);
  writeFileSync(entry, `${source}\n`);
  const warnings = [];
  const keepWarning = (msg) => warnings.push(String(msg?.message ?? msg).split('\n')[0]);
  const logger = {
    hasWarned: false,
    info() {},
    warn: keepWarning,
    warnOnce: keepWarning,
    error: keepWarning,
    clearScreen() {},
    hasErrorLogged: () => false,
  };
  const outDir = join(dir, id);
  await vite.build({
    configFile: false,
    envDir: false,
    root: dir,
    publicDir: false,
    logLevel: 'warn',
    customLogger: logger,
    build: {
      ssr: false,
      target: 'es2022',
      minify: false,
      sourcemap: false,
      reportCompressedSize: false,
      outDir,
      emptyOutDir: true,
      lib: { entry, formats: ['es'], fileName: id },
      rolldownOptions: { external: [/^@tensorflow\//], onwarn: (w) => keepWarning(w) },
    },
  });
  const files = readdirSync(outDir).filter((f) => f.endsWith('.js'));
  const code = files.map((f) => readFileSync(join(outDir, f), 'utf8')).join('\n');
  return { files, code, warnings };
}

/** Problems that make a bundle unusable in a browser without Node polyfills. */
function nodeProblems({ files, code, warnings }, proj) {
  const problems = [];
  for (const w of warnings) {
    const m = /Module "([^"]+)" has been externalized for browser compatibility, imported by "([^"]+)"/.exec(
      w,
    );
    if (m) problems.push(`'${m[1]}' (imported by ${m[2].replace(`${proj}/`, '')})`);
  }
  if (files.some((f) => f.includes('__vite-browser-external')) || code.includes('__vite-browser-external')) {
    problems.push('a __vite-browser-external stub');
  }
  for (const re of IMPORT_PATTERNS) {
    for (const [, spec] of code.matchAll(re)) {
      if (spec.startsWith('node:') || isBuiltin(spec)) problems.push(`imports '${spec}'`);
    }
  }
  return [...new Set(problems)];
}

/**
 * Builds every bundle whose packages are installed in `proj` and records one result each.
 * `record(name, ok, detail)` as in check.mjs.
 */
export async function checkBrowserBundles({ proj, record, installed = () => true }) {
  const t0 = performance.now();
  const { vite, version } = await loadVite();
  const dir = join(proj, 'browser');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const full = new Map();
  let i = 0;
  for (const b of BUNDLES) {
    const pkg = /^@[\w-]+\/[\w-]+/.exec(b.name)[0];
    if (!installed(pkg)) continue;
    const source = b.code ?? b.entries.map((e) => `export * from '${e}';`).join('\n');
    let out;
    try {
      out = await buildOne(vite, dir, `b${i++}`, source);
    } catch (e) {
      record(
        `browser bundle ${b.name}`,
        false,
        String(e?.message ?? e)
          .split('\n')
          .slice(0, 5)
          .join('\n    '),
      );
      continue;
    }
    if (!b.of) full.set(b.name, out);
    const problems = nodeProblems(out, proj).map((p) => `Node built-in: ${p}`);
    for (const m of b.forbid ?? []) {
      if (out.code.includes(m)) problems.push(`contains '${m}'`);
    }
    let size = `${kb(out.code.length)} (${kb(gzipSync(out.code).length)} gzip)`;
    if (b.of) {
      const whole = full.get(b.of);
      if (!whole) {
        problems.push(`no full bundle '${b.of}' to compare with`);
      } else {
        const stale = b.forbid.filter((m) => !whole.code.includes(m));
        if (stale.length > 0)
          problems.push(`markers not in the full ${b.of} bundle (update the check): ${stale}`);
        size += `, ${((100 * out.code.length) / whole.code.length).toFixed(0)}% of the full bundle`;
      }
    }
    const other = out.warnings.filter((w) => !/externalized for browser compatibility/.test(w));
    const note = other.length ? `; warnings: ${other.slice(0, 3).join(' | ')}` : '';
    record(
      `browser bundle ${b.name}`,
      problems.length === 0,
      problems.length ? problems.join('; ') : size + note,
    );
  }
  console.log(
    `  (vite ${version}, ${((performance.now() - t0) / 1000).toFixed(1)} s for the browser bundles)`,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const proj = process.argv[2];
  if (!proj) {
    console.error('usage: node tooling/pack-check/browser.mjs <pack-check project dir>');
    process.exit(2);
  }
  let failed = 0;
  await checkBrowserBundles({
    proj: resolve(proj),
    record: (name, ok, detail) => {
      if (!ok) failed++;
      console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
    },
  });
  process.exit(failed > 0 ? 1 : 0);
}
