import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Layout of one training run's folder. */
export interface RunPaths {
  root: string;
  config: string;
  log: string;
  checkpoints: string;
  best: string;
  report: string;
}

export function runPaths(root: string): RunPaths {
  return {
    root,
    config: join(root, 'config.yaml'),
    log: join(root, 'log.jsonl'),
    checkpoints: join(root, 'checkpoints'),
    best: join(root, 'best'),
    report: join(root, 'report'),
  };
}

/** A new run folder `<base>/<name>-<UTC timestamp>` (suffixed if it already exists). */
export function createRunDir(base: string, name: string): RunPaths {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  let root = resolve(base, `${name}-${stamp}`);
  for (let i = 2; existsSync(root); i++) root = resolve(base, `${name}-${stamp}-${i}`);
  mkdirSync(root, { recursive: true });
  return runPaths(root);
}

const STEP_DIR = /^step-(\d+)$/;

/** Checkpoint folders `checkpoints/step-<N>`, newest first. */
export function listCheckpoints(paths: RunPaths): Array<{ step: number; dir: string }> {
  if (!existsSync(paths.checkpoints)) return [];
  return readdirSync(paths.checkpoints)
    .map((name) => ({ m: STEP_DIR.exec(name), name }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number(x.m![1]), dir: join(paths.checkpoints, x.name) }))
    .sort((a, b) => b.step - a.step);
}

export function checkpointDir(paths: RunPaths, step: number): string {
  return join(paths.checkpoints, `step-${String(step).padStart(7, '0')}`);
}
