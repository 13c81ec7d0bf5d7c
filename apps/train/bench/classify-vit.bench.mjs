// The ViT crop classifier (bmc classify train --arch vit) against bmc's ResNet18 x0.25, trained the same
// way for the same wall time in the same run (issue 19's "small vision transformer as an option").
//
// Both: ../shared/data/pbc-cells, the same seeded stratified split (seed 1: the split the classify bench
// and tooling/classify_torchvision.py use), 64 px crops, class-balanced batches of 32, AdamW 2e-3 / 1e-4,
// HED stain + colour jitter + flips / quarter turns, BMC_BENCH_MINUTES (default 3) of training, then
// best/ (best validation balanced accuracy) scored on the held-out test split. The ViT runs its defaults
// (dim 64, depth 4, heads 4, patch 8 on 64 px crops = 64 tokens): nothing was tuned, on test or on
// validation. Then bmc detect --classifier with each exported model on real TXL-PBC smears: the
// classifier's ms per image (its own timer) beside the ResNet's, same images, same pass order.
// Writes runs/bench/classify-vit.json (committed copy: bench/measured/classify-vit.json).
// Run after `pnpm build`.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, machineRecord, report } from '@bmc/bench-utils';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const BIN = join(here, '..', 'bin', 'bmc.mjs');
const shared = process.env.BMC_SHARED_DATA ?? resolve(root, '..', 'shared', 'data');
const pbc = join(shared, 'pbc-cells');
const txl = join(shared, 'txl-pbc');
const MINUTES = Number(process.env.BMC_BENCH_MINUTES ?? 3);
const WIDTH = 0.25;
const DETECT_IMAGES = Number(process.env.BMC_BENCH_IMAGES ?? 12);

const COMMON = ['--folders', pbc, '--crop-size', '64', '--epochs', '100', '--batch', '32', '--lr', '0.002'];

function train(work, name, archArgs) {
  const run = join(work, name);
  const t0 = performance.now();
  execFileSync(
    process.execPath,
    [
      BIN,
      'classify',
      'train',
      ...COMMON,
      ...archArgs,
      '--out',
      run,
      '--time-budget',
      String(MINUTES),
      '--seed',
      '1',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const wallSeconds = (performance.now() - t0) / 1000;
  const rep = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
  const meta = JSON.parse(readFileSync(join(run, 'classifier.json'), 'utf8'));
  execFileSync(process.execPath, [BIN, 'classify', 'export', run, '--out', join(work, `${name}.onnx`)], {
    stdio: 'ignore',
  });
  return {
    run,
    result: {
      architecture: meta.architecture,
      steps: rep.run.steps,
      bestStep: rep.run.bestStep,
      trainSeconds: Number(rep.run.trainSeconds.toFixed(1)),
      wallSeconds: Number(wallSeconds.toFixed(1)),
      balancedAccuracy: rep.test.balancedAccuracy,
      macroF1: rep.test.macroF1,
      accuracy: rep.test.accuracy,
      validationBalancedAccuracy: rep.val.balancedAccuracy,
      perClassF1: Object.fromEntries(rep.test.perClass.map((c) => [c.class, c.f1])),
    },
    split: rep.run.split,
  };
}

if (!existsSync(pbc)) {
  console.log(`classify-vit bench skipped: ${pbc} not found (set BMC_SHARED_DATA)`);
} else {
  const work = mkdtempSync(join(tmpdir(), 'bmc-classify-vit-bench-'));
  const machine = machineRecord();
  const loads = { before: loadAverage() };
  try {
    const resnet = train(work, 'resnet', ['--width', String(WIDTH)]);
    loads.afterResnet = loadAverage();
    const vit = train(work, 'vit', ['--arch', 'vit']);
    loads.afterVit = loadAverage();

    let detect;
    const images = join(txl, 'images', 'test');
    if (existsSync(images)) {
      const { detectCommand } = await import('@bmc/infer');
      const { modelPath } = await import('@bmc/models');
      const files = readdirSync(images)
        .filter((f) => /\.(jpe?g|png)$/i.test(f))
        .sort()
        .slice(0, DETECT_IMAGES)
        .map((f) => join(images, f));
      const pass = async (name) => {
        const r = await detectCommand({
          inputs: files,
          model: modelPath(),
          out: join(work, `detect-${name}`),
          progress: false,
          annotate: false,
          log: () => {},
          classifier: join(work, `${name}.onnx`),
          classifierThreshold: 0.5,
        });
        // The first image pays the sessions' warm-up: left out.
        const rest = r.processed.slice(1);
        const mean = (f) => rest.reduce((a, p) => a + f(p), 0) / rest.length;
        return {
          msPerImage: Number(mean((p) => p.ms).toFixed(1)),
          classifyMsPerImage: Number(mean((p) => p.classifyMs).toFixed(1)),
          cellsPerImage: Number(mean((p) => p.count).toFixed(1)),
        };
      };
      detect = {
        images: `${files.length} TXL-PBC test smears (first left out as warm-up), shipped blood-smear detector, onnxruntime-node`,
        resnet: await pass('resnet'),
        vit: await pass('vit'),
      };
    }
    loads.after = loadAverage();

    const arch = vit.result.architecture;
    const vitName = `ViT dim ${arch.dim}, depth ${arch.depth}, heads ${arch.heads}, patch ${arch.patch} (${arch.parameters.toLocaleString('en')} parameters)`;
    const resName = `ResNet18 x${WIDTH} (${resnet.result.architecture.parameters.toLocaleString('en')} parameters)`;
    const rows = [
      {
        name: `bmc ${vitName}: balanced accuracy ${vit.result.balancedAccuracy.toFixed(3)}, macro-F1 ${vit.result.macroF1.toFixed(3)}, ${vit.result.steps} steps`,
        ms: vit.result.trainSeconds * 1000,
        refMs: resnet.result.trainSeconds * 1000,
        ref: `bmc ${resName}: balanced accuracy ${resnet.result.balancedAccuracy.toFixed(3)}, macro-F1 ${resnet.result.macroF1.toFixed(3)}, ${resnet.result.steps} steps`,
        extra: 'training wall time, same budget',
      },
      ...(detect
        ? [
            {
              name: `ViT classifier in bmc detect --classifier (${detect.vit.cellsPerImage} cells/image)`,
              ms: detect.vit.classifyMsPerImage,
              refMs: detect.resnet.classifyMsPerImage,
              ref: 'ResNet classifier',
              extra: `classifier ms per image; whole typed run ${detect.vit.msPerImage} vs ${detect.resnet.msPerImage} ms/image`,
            },
          ]
        : []),
    ];
    const f1 = Object.keys(vit.result.perClassF1).map(
      (c) => `${c} ${vit.result.perClassF1[c].toFixed(2)} / ${resnet.result.perClassF1[c].toFixed(2)}`,
    );
    const notes = [
      `pbc-cells held-out test split (${vit.split.test} crops, 11 types), ${MINUTES} min of training each, same split / crops / sampler / optimizer / augmentation`,
      `per-class F1 ViT / ResNet: ${f1.join(', ')}`,
      'both evaluate best/ (best validation balanced accuracy, checked every epoch); ViT at its defaults, nothing tuned',
    ];
    report('classify-vit', rows, notes);
    const result = {
      suite: 'classify-vit',
      command: 'pnpm --filter @bmc/train bench:classify-vit',
      date: new Date().toISOString(),
      minutes: MINUTES,
      data: 'pbc-cells (CC BY 4.0, Acevedo et al. 2020; see packages/classify/README.md)',
      split: vit.split,
      vit: vit.result,
      resnet: resnet.result,
      detect,
      machine: { ...machine, load: loads },
      rows,
      notes,
      caveats: [
        'one seed each; the machine is shared (load averages recorded before, between and after)',
        "a transformer trained from scratch on ~1,500 crops: no pretraining, no tuning; the ViT design is bmc's choice (packages/classify/src/vit.ts), not the thesis's improved ViT",
        'the same time budget, not the same number of steps: each network gets the steps it can run in it',
      ],
    };
    const out = join(root, 'runs', 'bench', 'classify-vit.json');
    writeFileSync(`${out}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
    renameSync(`${out}.tmp`, out);
    console.log(`wrote ${out}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
