#!/usr/bin/env node
/**
 * Packs a trained, exported bmc run into this package: models/<name>/{model.onnx, checkpoint/, model.json}.
 *   node packages/models/train/pack-model.mjs <runDir> <name> [--summary "..."]
 * The checkpoint is the one `bmc export` used (best/, else the newest step checkpoint) without its
 * optimizer state, which fine-tuning does not read and which would triple the package's size; its
 * manifest is rewritten for the files kept, and every kept file is checked against the original
 * manifest's sha256 first. The folder is assembled beside the old one and swapped in by rename.
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readBmcMetadata } from '@bmc/export/metadata';

const [runArg, name, ...rest] = process.argv.slice(2);
if (!runArg || !name || !/^[a-z0-9][a-z0-9-]*$/.test(name)) {
  console.error('usage: pack-model.mjs <runDir> <name (lowercase, digits, dashes)> [--summary "..."]');
  process.exit(2);
}
const run = resolve(runArg);
const onnx = join(run, 'model.onnx');
if (!existsSync(onnx)) {
  console.error(`${onnx}: missing (run bmc export ${runArg} first)`);
  process.exit(2);
}
const steps = existsSync(join(run, 'checkpoints'))
  ? readdirSync(join(run, 'checkpoints'))
      .filter((d) => /^step-\d+$/.test(d))
      .sort((a, b) => Number(b.slice(5)) - Number(a.slice(5)))
  : [];
const ckpt = existsSync(join(run, 'best', 'manifest.json'))
  ? join(run, 'best')
  : steps[0] && join(run, 'checkpoints', steps[0]);
if (!ckpt) {
  console.error(`${run}: no checkpoint (no best/, no checkpoints/step-*)`);
  process.exit(2);
}
const sha256 = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8'));
const keep = manifest.files.filter((f) => !f.path.startsWith('optimizer.'));
for (const f of keep) {
  if (sha256(join(ckpt, f.path)) !== f.sha256) {
    console.error(`${join(ckpt, f.path)}: sha256 differs from its manifest (damaged checkpoint)`);
    process.exit(1);
  }
}
const state = JSON.parse(readFileSync(join(ckpt, 'state.json'), 'utf8'));
const config = state.config ?? {};

const modelsDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'models');
const target = join(modelsDir, name);
const tmp = join(modelsDir, `.${name}.tmp-${process.pid}`);
rmSync(tmp, { recursive: true, force: true });
mkdirSync(join(tmp, 'checkpoint'), { recursive: true });
copyFileSync(onnx, join(tmp, 'model.onnx'));
for (const f of keep) copyFileSync(join(ckpt, f.path), join(tmp, 'checkpoint', f.path));
writeFileSync(
  join(tmp, 'checkpoint', 'manifest.json'),
  `${JSON.stringify({ ...manifest, files: keep }, null, 2)}\n`,
);
const meta = readBmcMetadata(readFileSync(onnx), onnx);
const summaryAt = rest.indexOf('--summary');
const info = {
  summary:
    summaryAt >= 0
      ? rest[summaryAt + 1]
      : 'Class-agnostic cell detector for stained blood smear fields (red cells, white cells, platelets as one class "cell")',
  classes: config.data?.classAgnostic === false ? null : ['cell'],
  architecture: config.model,
  // What bmc detect applies by default, as the export recorded it.
  pixelScale: meta.pixelScale ?? null,
  operatingPoint: meta.operatingPoint ?? null,
  training: {
    run: basename(run),
    checkpoint: ckpt === join(run, 'best') ? 'best' : basename(ckpt),
    step: state.step,
    epoch: state.epoch,
    config: 'packages/models/train/blood-smear.yaml',
    command: 'pnpm --filter @bmc/models train-model',
  },
  card: 'README.md of @bmc/models',
  files: {
    'model.onnx': { bytes: statSync(onnx).size, sha256: sha256(onnx) },
  },
};
writeFileSync(join(tmp, 'model.json'), `${JSON.stringify(info, null, 2)}\n`);
const old = join(modelsDir, `.${name}.old-${process.pid}`);
if (existsSync(target)) renameSync(target, old);
renameSync(tmp, target);
rmSync(old, { recursive: true, force: true });
const size = (d) =>
  readdirSync(d, { withFileTypes: true }).reduce(
    (n, e) => n + (e.isDirectory() ? size(join(d, e.name)) : statSync(join(d, e.name)).size),
    0,
  );
console.log(`packed ${name}: ${(size(target) / 2 ** 20).toFixed(2)} MB in ${target} (from ${ckpt})`);
