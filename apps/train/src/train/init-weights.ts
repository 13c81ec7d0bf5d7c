import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  importResNetWeights,
  PickleError,
  PthError,
  SafetensorsError,
  WeightImportError,
} from '@bmc/backbone';
import { InputError, UsageError } from '@bmc/core';
import { verifyCheckpoint } from '@bmc/export';
import * as tf from '@tensorflow/tfjs';
import type { TrainConfig } from '../config/schema.js';
import type { JsonlLog } from '../run/jsonl-log.js';
import { listCheckpoints, runPaths } from '../run/run-dir.js';
import { freezeBackbone } from './backbone-freeze.js';
import { resolveModelName } from './model-names.js';
import type { TrainState } from './state.js';
import type { StepContext } from './step.js';

/** Where the trainer's messages go. */
export interface InitIo {
  say: (line: string) => void;
  log: Pick<JsonlLog, 'write'>;
}

/** How many lines of a mismatch listing an error shows. */
const SHOWN = 10;

function firstLines(lines: string[]): string {
  const shown = lines.slice(0, SHOWN).map((l) => `  ${l}`);
  if (lines.length > SHOWN) shown.push(`  ... and ${lines.length - SHOWN} more`);
  return shown.join('\n');
}

/**
 * Loads `model.backbone.weights` (a torchvision / timm ResNet checkpoint, `.pth` or `.safetensors`)
 * into the detector's backbone. The ImageNet classifier (`fc.*`) and `num_batches_tracked` are expected
 * and ignored; BatchNorm statistics and affine terms fill bmc's (frozen) BatchNorm. Names or shapes that
 * do not fit the configured depth / width are an input error listing the first mismatches.
 */
export function loadBackboneWeights(model: tf.LayersModel, file: string, io: InitIo): { loaded: number } {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch (e) {
    throw new InputError(`${file}: cannot read model.backbone.weights (${(e as Error).message})`, file);
  }
  let report: ReturnType<typeof importResNetWeights>;
  try {
    report = importResNetWeights(model, bytes, { source: file, layerPrefix: 'backbone.body.' });
  } catch (e) {
    if (
      e instanceof WeightImportError ||
      e instanceof PthError ||
      e instanceof PickleError ||
      e instanceof SafetensorsError
    ) {
      const [head, ...rest] = e.message.split('\n');
      const detail = rest.map((l) => l.trim()).filter(Boolean);
      throw new InputError(
        `${head}${detail.length ? `\n${firstLines(detail)}` : ''}\n` +
          '(model.backbone.weights must be a ResNet of the configured model.backbone.depth at widthMultiplier 1)',
        file,
      );
    }
    throw e;
  }
  const fc = report.ignored.filter((k) => /(^|\.)fc\./.test(k));
  const counters = report.ignored.length - fc.length;
  io.say(
    `backbone weights: loaded ${report.loaded.length} tensors from ${file} (${report.format}); ignored ` +
      `${fc.length ? `${fc.join(', ')} (the ImageNet classifier) and ` : ''}${counters} num_batches_tracked counters`,
  );
  io.log.write({
    event: 'backbone-weights',
    file,
    format: report.format,
    loaded: report.loaded.length,
    ignored: report.ignored,
  });
  return { loaded: report.loaded.length };
}

/**
 * The checkpoint folder `--init` names: a checkpoint folder itself (it has a manifest), a run folder
 * (its `best/`, else its newest readable step checkpoint), or the name of a shipped model.
 */
export async function resolveInitCheckpoint(spec: string): Promise<string> {
  const path = resolve(spec);
  if (existsSync(path)) {
    if (existsSync(join(path, 'manifest.json'))) return path;
    const run = runPaths(path);
    if (!existsSync(run.config)) {
      throw new InputError(
        `--init ${spec}: neither a run folder (no config.yaml) nor a checkpoint folder (no manifest.json)`,
        spec,
      );
    }
    if (existsSync(join(run.best, 'manifest.json'))) return run.best;
    for (const c of listCheckpoints(run)) {
      try {
        verifyCheckpoint(c.dir);
        return c.dir;
      } catch {
        // an unfinished or damaged checkpoint: try the previous one
      }
    }
    throw new InputError(
      `--init ${spec}: the run has no readable checkpoint (no best/, no checkpoints/step-*)`,
      spec,
    );
  }
  // Something that looks like a path but is not there is a typo, not a model name.
  if (/[/\\]/.test(spec) || spec.startsWith('.'))
    throw new InputError(`--init ${spec}: no such run or checkpoint folder`, spec);
  return resolveModelName(spec);
}

/** Head layers whose output width depends on the class count or on the IoU branch: re-initialised when they differ. */
const REINIT_LAYERS = ['head.classification_head.cls_logits', 'head.regression_head.iou_pred'];
const layerOf = (weight: string) => weight.slice(0, weight.lastIndexOf('/'));

export interface InitReport {
  checkpoint: string;
  loaded: string[];
  /** Weights left as the detector builder initialised them (the classifier's prior-probability bias included). */
  reinitialised: string[];
  /** Weights of the checkpoint this model has no place for (a head branch it does not have). */
  skipped: string[];
}

/**
 * Starts `model` from a whole detector saved by bmc: every weight with the same name and shape is
 * copied. When the class count differs the classifier's last conv keeps the builder's initialisation
 * (weights N(0, 0.01), bias -log((1 - 0.01) / 0.01)), and so does an IoU branch the checkpoint lacks;
 * the checkpoint's IoU branch is skipped when this model has none. Any other difference (depth, width,
 * neck, head convs) is an architecture mismatch: an input error naming the first mismatching tensors,
 * with the model left untouched.
 */
export async function initFromDetector(
  model: tf.LayersModel,
  spec: string,
  io: InitIo,
  /** This run's model settings: a mismatch error then says which `--set` would match the checkpoint. */
  current?: TrainConfig['model'],
): Promise<InitReport> {
  const dir = await resolveInitCheckpoint(spec);
  const source = savedWeights(dir);
  const report: InitReport = { checkpoint: dir, loaded: [], reinitialised: [], skipped: [] };
  const mismatches: string[] = [];
  const copies: Array<[tf.LayerVariable, SavedWeight]> = [];
  let classes: [number, number] | undefined;
  for (const w of model.weights) {
    const name = w.originalName;
    const s = source.get(name);
    source.delete(name);
    if (s && s.shape.join('x') === w.shape.join('x')) {
      copies.push([w, s]);
      report.loaded.push(name);
    } else if (REINIT_LAYERS.includes(layerOf(name))) {
      report.reinitialised.push(name);
      if (s && name.endsWith('cls_logits/bias')) classes = [s.shape[0]!, w.shape[0]!];
    } else {
      mismatches.push(
        s
          ? `${name}: [${s.shape}] in the checkpoint, [${w.shape}] in this model`
          : `${name}: not in the checkpoint`,
      );
    }
  }
  for (const name of source.keys()) {
    if (REINIT_LAYERS.includes(layerOf(name))) report.skipped.push(name);
    else mismatches.push(`${name}: in the checkpoint, not in this model`);
  }
  if (mismatches.length > 0) {
    throw new InputError(
      `--init ${spec} (${dir}): the checkpoint's architecture differs from this config ` +
        `(model.backbone depth/width, model.neck, model.head); first mismatching tensors:\n${firstLines(mismatches)}` +
        settingsHint(dir, current),
      spec,
    );
  }
  for (const [w, s] of copies) {
    const t = tf.tensor(s.data, s.shape, s.dtype);
    w.write(t);
    t.dispose();
  }
  const classNote = classes ? `; class count differs (${classCounts(classes, model)})` : '';
  io.say(
    `init from ${dir}: ${report.loaded.length} tensors loaded, ${report.reinitialised.length} re-initialised` +
      `${report.reinitialised.length ? ` (${report.reinitialised.join(', ')})` : ''}, ` +
      `${report.skipped.length} skipped${report.skipped.length ? ` (${report.skipped.join(', ')})` : ''}${classNote}`,
  );
  io.log.write({ event: 'init', from: spec, ...report });
  return report;
}

/** The `--set` flags that give this run the checkpoint's model settings (from its state.json), if known. */
function settingsHint(dir: string, current: TrainConfig['model'] | undefined): string {
  if (!current) return '';
  let saved: unknown;
  try {
    saved = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'))?.config?.model;
  } catch {
    return '';
  }
  if (!saved || typeof saved !== 'object') return '';
  const flags: string[] = [];
  const walk = (a: unknown, b: unknown, key: string) => {
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a)) {
      for (const k of Object.keys(a))
        walk((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${key}.${k}`);
    } else if (a !== undefined && JSON.stringify(a) !== JSON.stringify(b)) {
      flags.push(`--set ${key}=${JSON.stringify(a)}`);
    }
  };
  // Training-only settings (which layers train, for how long) do not change the weights' shapes.
  const {
    freezeSteps: _f,
    frozenStages: _s,
    frozenBatchNorm: _b,
    weights: _w,
    ...backbone
  } = (saved as TrainConfig['model']).backbone;
  walk({ ...(saved as TrainConfig['model']), backbone }, current, 'model');
  return flags.length ? `\nThe checkpoint was trained with: ${flags.join(' ')}` : '';
}

interface SavedWeight {
  shape: number[];
  dtype: 'float32' | 'int32';
  data: Float32Array | Int32Array;
}

/**
 * A checkpoint's model weights by name as plain arrays: `model.json`'s index into `weights.bin`
 * (@bmc/export's format), after every file's size and SHA-256 are verified. No model is rebuilt
 * and no tensor created, so nothing of the source outlives the call.
 */
function savedWeights(dir: string): Map<string, SavedWeight> {
  verifyCheckpoint(dir);
  const bad = (what: string) => new InputError(`checkpoint ${dir}: ${what}`, dir);
  let index: Array<{ name: string; shape: number[]; dtype: string; offset: number }>;
  try {
    index = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')).weights;
  } catch (e) {
    throw bad(`model.json is not readable JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(index)) throw bad("model.json has no 'weights' index");
  const blob = readFileSync(join(dir, 'weights.bin'));
  const out = new Map<string, SavedWeight>();
  for (const e of index) {
    const n = Array.isArray(e?.shape) ? e.shape.reduce((a, d) => a * d, 1) : Number.NaN;
    if (typeof e?.name !== 'string' || !Number.isInteger(n) || (e.dtype !== 'float32' && e.dtype !== 'int32'))
      throw bad(`weight entry ${JSON.stringify(e).slice(0, 120)} is malformed`);
    if (!Number.isInteger(e.offset) || e.offset < 0 || e.offset + 4 * n > blob.length)
      throw bad(`weight '${e.name}' lies outside weights.bin`);
    // A copy: the file buffer's offset need not be 4-byte aligned.
    const bytes = blob.subarray(e.offset, e.offset + 4 * n);
    const buf = new Uint8Array(bytes).buffer;
    out.set(e.name, {
      shape: e.shape,
      dtype: e.dtype,
      data: e.dtype === 'float32' ? new Float32Array(buf) : new Int32Array(buf),
    });
  }
  return out;
}

/** "1 -> 5 classes" from the classifier bias lengths (anchors x classes). */
function classCounts([from, to]: [number, number], model: tf.LayersModel): string {
  const box = model.weights.find((w) => w.originalName.endsWith('bbox_reg/bias'));
  const anchors = box ? box.shape[0]! / 4 : 1;
  return `${from / anchors} -> ${to / anchors} classes`;
}

export interface StartingWeights {
  config: TrainConfig;
  model: tf.LayersModel;
  step: StepContext;
  state: TrainState;
  io: InitIo;
}

/**
 * The set-up stage's weights: on a new run, `--init` (a whole detector) or `model.backbone.weights`
 * (a ResNet checkpoint), before the first step; on every run, the backbone freeze of
 * `model.backbone.freezeSteps`. A resumed run has its weights from its checkpoint already.
 */
export async function applyStartingWeights(
  s: StartingWeights,
  options: { init?: string; resumed: boolean },
): Promise<void> {
  const { backbone } = s.config.model;
  if (!options.resumed) {
    if (options.init) {
      if (backbone.weights)
        s.io.say(`model.backbone.weights (${backbone.weights}) not used: --init loads the whole detector`);
      await initFromDetector(s.model, options.init, s.io, s.config.model);
    } else if (backbone.weights) {
      loadBackboneWeights(s.model, backbone.weights, s.io);
    }
  } else if (options.init) {
    throw new UsageError('--init starts a new run; a resumed run continues from its own checkpoint');
  }
  if (backbone.freezeSteps > s.state.step) {
    s.step.optimizer = freezeBackbone(s.step.optimizer, backbone.freezeSteps, () => s.state.step, s.io);
    s.io.say(`backbone frozen (not updated, not decayed) until step ${backbone.freezeSteps}`);
  }
}
