import { readFileSync } from 'node:fs';
import { InputError } from '@bmc/core';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { PRESETS, presetNames } from './presets.js';
import { configSchema, type TrainConfig, type TrainConfigInput } from './schema.js';

export class ConfigError extends InputError {
  override name = 'ConfigError';
}

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Keys that would reach an object's prototype instead of a config value when merged (`out[k] = v`
 * with k = '__proto__' replaces the prototype, so zod never sees the key). They are not config
 * keys, so they are reported like any unknown key, with where they were written.
 */
const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function rejectPrototypeKeys(value: unknown, source: string, path: string[] = []): void {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) rejectPrototypeKeys(v, source, [...path, String(i)]);
    return;
  }
  if (!isPlain(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const at = [...path, k];
    if (PROTOTYPE_KEYS.has(k))
      throw new ConfigError(`invalid config ${source}:\n  ${at.join('.')}: unknown key '${k}'`);
    rejectPrototypeKeys(v, source, at);
  }
}

/** Deep merge where `over` wins; arrays are replaced, not concatenated. */
export function mergeConfig<T extends Plain>(base: T, over: Plain): T {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isPlain(v) && isPlain(out[k]) ? mergeConfig(out[k] as Plain, v) : v;
  }
  return out as T;
}

/** Turns `optim.lr=0.01` into `{ optim: { lr: 0.01 } }`; values are parsed as YAML scalars/lists. */
export function parseOverride(text: string): Plain {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set '${text}': expected key.path=value`);
  const path = text.slice(0, eq).split('.');
  const bad = path.find((k) => PROTOTYPE_KEYS.has(k));
  if (bad) throw new ConfigError(`--set '${text}': unknown key '${bad}'`);
  let value: unknown;
  try {
    value = parseYaml(text.slice(eq + 1));
  } catch (err) {
    throw new ConfigError(`--set '${text}': value is not valid YAML (${(err as Error).message})`);
  }
  rejectPrototypeKeys(value, `--set '${text}'`, path);
  return path.reduceRight<unknown>((acc, key) => ({ [key]: acc }), value) as Plain;
}

/** Formats zod issues as `key.path: message` lines, so a user sees which key is wrong. */
export function formatIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
  return `invalid config ${source}:\n${lines.join('\n')}`;
}

function readConfigFile(file: string): Plain {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(
      `config ${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  if (!isPlain(parsed)) throw new ConfigError(`config ${file}: expected a mapping at the top level`, file);
  rejectPrototypeKeys(parsed, file);
  return parsed;
}

export interface LoadConfigOptions {
  preset?: string;
  file?: string;
  /** `key.path=value` overrides, applied last. */
  set?: string[];
  /** Programmatic overrides (CLI flags), applied after `set`. */
  overrides?: TrainConfigInput;
}

/** preset (or the file's `preset:` key) <- file <- --set <- flags, then validated. */
export function loadConfig(options: LoadConfigOptions = {}): TrainConfig {
  const fromFile = options.file ? readConfigFile(options.file) : {};
  const presetName = options.preset ?? (typeof fromFile.preset === 'string' ? fromFile.preset : undefined);
  let merged: Plain = {};
  if (presetName) {
    const preset = PRESETS[presetName];
    if (!preset) throw new ConfigError(`unknown preset '${presetName}' (known: ${presetNames().join(', ')})`);
    merged = mergeConfig(merged, preset as Plain);
    merged.preset = presetName;
  }
  merged = mergeConfig(merged, fromFile);
  for (const s of options.set ?? []) merged = mergeConfig(merged, parseOverride(s));
  if (options.overrides) {
    rejectPrototypeKeys(options.overrides, '(command-line flags)');
    merged = mergeConfig(merged, options.overrides as Plain);
  }
  const result = configSchema.safeParse(merged);
  if (!result.success)
    throw new ConfigError(formatIssues(result.error, options.file ?? `(preset ${presetName ?? 'none'})`));
  return result.data;
}
