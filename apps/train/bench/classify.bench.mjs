// The cell-type classifier against torchvision, and its share of bmc detect's time (issue 19).
//
// 1. bmc classify train on ../shared/data/pbc-cells for BMC_BENCH_MINUTES (default 3) of training,
//    then tooling/classify_torchvision.py on the same split (the run's split.json), the same 64 px
//    crops, class-balanced batches of 32, AdamW 2e-3 / 1e-4, the same ResNet18 architecture and width
//    (torchvision's ResNet / BasicBlock scaled as @bmc/backbone scales it) and the same wall time.
//    Both are scored on the same held-out test crops: per-class F1, balanced accuracy, macro-F1.
// 2. bmc detect with the shipped blood-smear detector on real TXL-PBC smears, with and without
//    --classifier (the bmc classifier just trained): ms per image and the classifier's share.
// Writes runs/bench/classify.json (and the committed copy is bench/measured/classify-vs-torchvision.json).
// Run after `pnpm build`; needs Debian's /usr/bin/python3 with torch + torchvision.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PYTHON, report, torchAvailable } from '@bmc/bench-utils';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const BIN = join(here, '..', 'bin', 'bmc.mjs');
const shared = process.env.BMC_SHARED_DATA ?? resolve(root, '..', 'shared', 'data');
const pbc = join(shared, 'pbc-cells');
const txl = join(shared, 'txl-pbc');
const MINUTES = Number(process.env.BMC_BENCH_MINUTES ?? 3);
const WIDTH = Number(process.env.BMC_BENCH_WIDTH ?? 0.25);
const DETECT_IMAGES = Number(process.env.BMC_BENCH_IMAGES ?? 12);

const lscpu = () => {
  try {
    const out = execFileSync('lscpu', { encoding: 'utf8' });
    const field = (k) => out.match(new RegExp(`^${k}:\\s*(.*)$`, 'm'))?.[1]?.trim();
    return { model: field('Model name'), cpus: field('CPU\\(s\\)'), flags: field('Flags') };
  } catch {
    return { model: cpus()[0]?.model, cpus: String(cpus().length) };
  }
};
const load = () => loadavg().map((l) => Number(l.toFixed(2)));

if (!existsSync(pbc)) {
  console.log(`classify bench skipped: ${pbc} not found (set BMC_SHARED_DATA)`);
} else if (!torchAvailable()) {
  console.log(`classify bench skipped: ${PYTHON} cannot import torch and torchvision`);
} else {
  const work = mkdtempSync(join(tmpdir(), 'bmc-classify-bench-'));
  const run = join(work, 'pbc');
  const loads = { before: load() };
  try {
    // Epochs well past the budget: the time budget ends training (then best/ is evaluated).
    const t0 = performance.now();
    execFileSync(
      process.execPath,
      [
        BIN,
        'classify',
        'train',
        '--folders',
        pbc,
        '--out',
        run,
        '--crop-size',
        '64',
        '--width',
        String(WIDTH),
        '--epochs',
        '100',
        '--batch',
        '32',
        '--lr',
        '0.002',
        '--time-budget',
        String(MINUTES),
        '--seed',
        '1',
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const bmcWall = (performance.now() - t0) / 1000;
    loads.afterBmc = load();
    const rep = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
    const bmc = {
      trainer: `bmc classify train (@bmc/backbone ResNet18 width ${WIDTH}, tfjs + onnxruntime conv kernels)`,
      steps: rep.run.steps,
      bestStep: rep.run.bestStep,
      trainSeconds: Number(rep.run.trainSeconds.toFixed(1)),
      wallSeconds: Number(bmcWall.toFixed(1)),
      balancedAccuracy: rep.test.balancedAccuracy,
      macroF1: rep.test.macroF1,
      accuracy: rep.test.accuracy,
      perClassF1: Object.fromEntries(rep.test.perClass.map((c) => [c.class, c.f1])),
    };
    const tv = JSON.parse(
      execFileSync(
        PYTHON,
        [
          join(root, 'tooling', 'classify_torchvision.py'),
          run,
          '--minutes',
          String(MINUTES),
          '--width',
          String(WIDTH),
        ],
        { encoding: 'utf8', maxBuffer: 1 << 24 },
      )
        .trim()
        .split('\n')
        .at(-1),
    );
    loads.afterTorchvision = load();

    // The classifier's share of bmc detect: the same images with and without --classifier.
    execFileSync(process.execPath, [BIN, 'classify', 'export', run, '--out', join(work, 'cls.onnx')], {
      stdio: 'ignore',
    });
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
      const pass = async (classifier) => {
        const r = await detectCommand({
          inputs: files,
          model: modelPath(),
          out: join(work, classifier ? 'detect-cls' : 'detect'),
          progress: false,
          annotate: false,
          log: () => {},
          ...(classifier ? { classifier, classifierThreshold: 0.5 } : {}),
        });
        // The first image pays the sessions' warm-up: left out.
        const rest = r.processed.slice(1);
        const mean = (f) => rest.reduce((a, p) => a + f(p), 0) / rest.length;
        return {
          msPerImage: mean((p) => p.ms),
          classifyMsPerImage: classifier ? mean((p) => p.classifyMs) : 0,
          cellsPerImage: mean((p) => p.count),
        };
      };
      const plain = await pass(undefined);
      const typed = await pass(join(work, 'cls.onnx'));
      detect = {
        images: `${files.length} TXL-PBC test smears (first left out as warm-up), shipped blood-smear detector, onnxruntime-node`,
        msPerImage: Number(plain.msPerImage.toFixed(1)),
        msPerImageWithClassifier: Number(typed.msPerImage.toFixed(1)),
        classifyMsPerImage: Number(typed.classifyMsPerImage.toFixed(1)),
        classifierShare: Number((typed.classifyMsPerImage / typed.msPerImage).toFixed(3)),
        cellsPerImage: Number(typed.cellsPerImage.toFixed(1)),
      };
    }
    loads.after = load();

    const rows = [
      {
        name: `bmc ResNet18 x${WIDTH}: balanced accuracy ${bmc.balancedAccuracy.toFixed(3)}, macro-F1 ${bmc.macroF1.toFixed(3)}, ${bmc.steps} steps`,
        ms: bmc.trainSeconds * 1000,
        refMs: tv.trainSeconds * 1000,
        ref: `torchvision: balanced accuracy ${tv.balancedAccuracy.toFixed(3)}, macro-F1 ${tv.macroF1.toFixed(3)}, ${tv.steps} steps`,
        extra: 'training wall time, same budget',
      },
      ...(detect
        ? [
            {
              name: `bmc detect + classifier (${detect.cellsPerImage} cells/image)`,
              ms: detect.msPerImageWithClassifier,
              refMs: detect.msPerImage,
              ref: 'bmc detect alone',
              extra: `classifier ${detect.classifyMsPerImage} ms/image = ${(100 * detect.classifierShare).toFixed(1)}% of the typed run`,
            },
          ]
        : []),
    ];
    const f1 = Object.keys(bmc.perClassF1).map(
      (c) => `${c} ${bmc.perClassF1[c].toFixed(2)} / ${tv.perClassF1[c].toFixed(2)}`,
    );
    const notes = [
      `pbc-cells held-out test split (${rep.run.split.test} crops, 11 types), ${MINUTES} min of training each, same split / crops / sampler / optimizer / architecture (width ${WIDTH})`,
      `per-class F1 bmc / torchvision: ${f1.join(', ')}`,
      'bmc evaluates best/ (best validation balanced accuracy, checked every epoch); torchvision its last weights',
      'bmc adds HED stain and colour jitter to the flips / quarter turns both use',
    ];
    report('classify', rows, notes);
    const result = {
      suite: 'classify',
      command: 'pnpm --filter @bmc/train bench:classify',
      date: new Date().toISOString(),
      minutes: MINUTES,
      width: WIDTH,
      data: 'pbc-cells (CC BY 4.0, Acevedo et al. 2020; see packages/classify/README.md)',
      split: rep.run.split,
      bmc,
      torchvision: tv,
      detect,
      machine: { lscpu: lscpu(), load: loads },
      // What report() prints and pnpm bench's summary table reads.
      rows,
      notes,
      caveats: [
        'one seed each; the machine is shared (load averages recorded before, between and after)',
        'bmc evaluates best/ (validation-selected), torchvision the weights it ends with',
        'bmc trains with HED stain + colour jitter besides flips / quarter turns; torchvision with flips / quarter turns',
        'both sides run 2 CPU threads; bmc on tfjs-wasm with onnxruntime-node convolutions, torch 1.13 on its own CPU kernels',
      ],
    };
    const out = join(root, 'runs', 'bench', 'classify.json');
    // report() wrote the rows there; the full record replaces it.
    const { writeFileSync, renameSync } = await import('node:fs');
    writeFileSync(`${out}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
    renameSync(`${out}.tmp`, out);
    console.log(`wrote ${out}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
