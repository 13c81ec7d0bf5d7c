#!/usr/bin/env node
// Dry run of the next release (issue 11): copies the workspace's package.json files, CHANGELOG.md
// files, pnpm-workspace.yaml and .changeset/ into a temporary git repository (never the working
// tree), runs `changeset status --verbose` and `changeset version` there with the workspace's
// @changesets/cli, and checks the result against the pending changesets:
//   - each package named in a changeset gets the highest bump asked for it;
//   - any other package that changes is a dependent of a bumped package, bumped at patch
//     (`updateInternalDependencies: "patch"`), with an "Updated dependencies" entry;
//   - every changed package's CHANGELOG.md starts a `## <new version>` section holding each
//     changeset's summary (first line) or the dependency update;
//   - internal dependency ranges are unchanged: `workspace:*` stays `workspace:*` (pnpm pack
//     writes the released version into the tarball, which check.mjs's pack step verifies);
//   - `changeset status` lists the same versions.
// Called by check.mjs; on its own: node tooling/pack-check/changesets.mjs
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const BUMPS = ['patch', 'minor', 'major'];
const DEP_FIELDS = ['dependencies', 'devDependencies', 'peerDependencies', 'optionalDependencies'];

function bump(version, type) {
  const [maj, min, pat] = version.split('-')[0].split('.').map(Number);
  if (type === 'major') return `${maj + 1}.0.0`;
  if (type === 'minor') return `${maj}.${min + 1}.0`;
  return `${maj}.${min}.${pat + 1}`;
}

/** The pending changesets: `{ file, releases: Map<name, type>, summary }`. */
function readChangesets(dir) {
  const out = [];
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.md') || f === 'README.md') continue;
    const text = readFileSync(join(dir, f), 'utf8');
    const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n([\s\S]*)$/.exec(text);
    if (!m) throw new Error(`.changeset/${f}: no front matter`);
    const releases = new Map();
    for (const line of m[1].split('\n').filter((l) => l.trim())) {
      const r = /^\s*["']?([^"':]+)["']?\s*:\s*(patch|minor|major)\s*$/.exec(line);
      if (!r) throw new Error(`.changeset/${f}: cannot read '${line}'`);
      releases.set(r[1], r[2]);
    }
    out.push({ file: f, releases, summary: m[2].trim() });
  }
  return out;
}

function workspacePackageDirs(root) {
  const dirs = [];
  for (const group of ['packages', 'apps', 'tooling']) {
    if (!existsSync(join(root, group))) continue;
    for (const d of readdirSync(join(root, group))) {
      if (existsSync(join(root, group, d, 'package.json'))) dirs.push(join(group, d));
    }
  }
  return dirs;
}

function run(cmd, argv, cwd) {
  const r = spawnSync(cmd, argv, {
    cwd,
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'pack-check',
      GIT_AUTHOR_EMAIL: 'pack-check@localhost',
      GIT_COMMITTER_NAME: 'pack-check',
      GIT_COMMITTER_EMAIL: 'pack-check@localhost',
      NO_COLOR: '1',
      FORCE_COLOR: '0',
    },
  });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Runs the dry run and records results with `record(name, ok, detail)`; returns the new versions. */
export function checkChangesets({ record, keep = false }) {
  const changesets = readChangesets(join(repo, '.changeset'));
  const tmp = mkdtempSync(join(tmpdir(), 'bmc-changesets-'));
  const pkgDirs = workspacePackageDirs(repo);
  const before = new Map();
  for (const d of pkgDirs) {
    mkdirSync(join(tmp, d), { recursive: true });
    for (const f of ['package.json', 'CHANGELOG.md']) {
      if (existsSync(join(repo, d, f))) copyFileSync(join(repo, d, f), join(tmp, d, f));
    }
    before.set(d, JSON.parse(readFileSync(join(repo, d, 'package.json'), 'utf8')));
  }
  for (const f of ['package.json', 'pnpm-workspace.yaml']) copyFileSync(join(repo, f), join(tmp, f));
  mkdirSync(join(tmp, '.changeset'));
  for (const f of readdirSync(join(repo, '.changeset'))) {
    copyFileSync(join(repo, '.changeset', f), join(tmp, '.changeset', f));
  }
  const cli = join(repo, 'node_modules', '.bin', 'changeset');
  const problems = [];
  const git = [
    ['init', '-q', '-b', 'main'],
    ['add', '-A'],
    ['commit', '-q', '-m', 'release dry run'],
  ];
  for (const argv of git) {
    const r = run('git', argv, tmp);
    if (r.code !== 0) problems.push(`git ${argv[0]}: ${r.out.trim()}`);
  }
  const status = problems.length ? { code: -1, out: '' } : run(cli, ['status', '--verbose'], tmp);
  if (status.code !== 0)
    problems.push(`changeset status exited ${status.code}: ${status.out.trim().slice(-500)}`);
  const version = status.code === 0 ? run(cli, ['version'], tmp) : { code: -1, out: '' };
  if (status.code === 0 && version.code !== 0) {
    problems.push(`changeset version exited ${version.code}: ${version.out.trim().slice(-500)}`);
  }

  // Expected bumps from the changesets.
  const byName = new Map([...before].map(([d, pj]) => [pj.name, { dir: d, pj }]));
  const wanted = new Map();
  for (const cs of changesets) {
    for (const [name, type] of cs.releases) {
      if (!byName.has(name)) problems.push(`.changeset/${cs.file} names ${name}, not a workspace package`);
      const prev = wanted.get(name);
      if (!prev || BUMPS.indexOf(type) > BUMPS.indexOf(prev)) wanted.set(name, type);
    }
  }
  const versions = [];
  if (version.code === 0) {
    const listed = new Map(
      [...status.out.matchAll(/^\S*\s*-\s+(@?[\w./-]+)\s+(\d+\.\d+\.\d+\S*)\s*$/gm)].map((m) => [m[1], m[2]]),
    );
    const bumped = new Set();
    for (const [name, { dir, pj }] of byName) {
      const after = JSON.parse(readFileSync(join(tmp, dir, 'package.json'), 'utf8'));
      if (after.version !== pj.version) bumped.add(name);
    }
    for (const [name, { dir, pj }] of byName) {
      const after = JSON.parse(readFileSync(join(tmp, dir, 'package.json'), 'utf8'));
      const type = wanted.get(name);
      const changelogFile = join(tmp, dir, 'CHANGELOG.md');
      const changelog = existsSync(changelogFile) ? readFileSync(changelogFile, 'utf8') : '';
      // The section of the new version: from its heading to the next `## `.
      const section = (changelog.split(`\n## ${after.version}\n`)[1] ?? '').split(/\n## /)[0];
      if (type) {
        const expect = bump(pj.version, type);
        if (after.version !== expect)
          problems.push(`${name}: ${pj.version} -> ${after.version}, expected ${expect}`);
        for (const cs of changesets.filter((c) => c.releases.has(name))) {
          const first = cs.summary.split('\n')[0].trim();
          if (!section.includes(first))
            problems.push(`${name}: CHANGELOG.md ${after.version} lacks ${cs.file}`);
        }
      } else if (after.version !== pj.version) {
        const deps = DEP_FIELDS.filter((f) => f !== 'devDependencies').flatMap((f) =>
          Object.keys(pj[f] ?? {}),
        );
        if (!deps.some((d) => bumped.has(d)))
          problems.push(`${name}: bumped without a changeset or a bumped dependency`);
        if (after.version !== bump(pj.version, 'patch')) {
          problems.push(`${name}: ${pj.version} -> ${after.version}, expected a patch bump as a dependent`);
        }
        if (!section.includes('Updated dependencies'))
          problems.push(`${name}: CHANGELOG.md lacks the dependency update`);
      }
      if (after.version !== pj.version) {
        if (listed.get(name) !== after.version) {
          problems.push(
            `${name}: changeset status says ${listed.get(name) ?? 'nothing'}, version wrote ${after.version}`,
          );
        }
        versions.push(`${name} ${pj.version} -> ${after.version}${type ? ` (${type})` : ' (dependent)'}`);
      }
      // Internal ranges: workspace:* must survive `changeset version` untouched.
      for (const f of DEP_FIELDS) {
        for (const [dep, range] of Object.entries(pj[f] ?? {})) {
          if (!byName.has(dep)) continue;
          const now = after[f]?.[dep];
          if (now !== range) problems.push(`${name}: ${f}.${dep} ${range} -> ${now}`);
          else if (!String(range).startsWith('workspace:'))
            problems.push(`${name}: ${f}.${dep} is ${range}, not workspace:`);
        }
      }
    }
    const left = readdirSync(join(tmp, '.changeset')).filter((f) => f.endsWith('.md') && f !== 'README.md');
    if (left.length > 0) problems.push(`changesets not consumed: ${left.join(', ')}`);
  }
  record(
    'changeset version (dry run)',
    problems.length === 0,
    problems.length > 0
      ? problems.join('\n    ')
      : `${changesets.length} changesets${versions.length ? `, versions:\n    ${versions.join('\n    ')}` : ', nothing to release'}`,
  );
  if (keep || problems.length > 0) console.log(`  kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
  return versions;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let failed = 0;
  checkChangesets({
    keep: process.argv.includes('--keep'),
    record: (name, ok, detail) => {
      if (!ok) failed++;
      console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
    },
  });
  process.exit(failed > 0 ? 1 : 0);
}
