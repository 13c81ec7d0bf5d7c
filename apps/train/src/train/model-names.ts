import { existsSync } from 'node:fs';
import { InputError } from '@bmc/core';

/** What a package of shipped models offers `bmc train --init <name>` (@bmc/models). */
export interface ModelPackage {
  modelNames(): string[];
  /** The fine-tuning checkpoint folder of a shipped model; throws (or returns undefined) for an unknown name. */
  checkpointDir(name: string): string | undefined;
}

/** The package that ships bmc's pretrained detectors: optional, so loaded at run time. */
const MODELS_PACKAGE = '@bmc/models';

/** The checkpoint folder of a shipped model by name; an unknown name is an input error listing the known ones. */
export async function resolveModelName(name: string): Promise<string> {
  const models = (await import(/* @vite-ignore */ MODELS_PACKAGE).catch(() => undefined)) as
    | ModelPackage
    | undefined;
  let dir: string | undefined;
  try {
    dir = models?.checkpointDir(name);
  } catch {
    dir = undefined; // an unknown name: reported below with the known ones
  }
  if (dir && existsSync(dir)) return dir;
  const known = models?.modelNames() ?? [];
  if (dir)
    throw new InputError(
      `model ${name} of ${MODELS_PACKAGE} has no checkpoint folder (${dir} is missing)`,
      dir,
    );
  throw new InputError(
    `unknown model name ${name}; known: ${known.length ? known.join(', ') : `none (${MODELS_PACKAGE} is not installed)`}`,
  );
}
