import { InputError } from '@bmc/core';

/** What a package of shipped models offers `bmc train --init <name>`. */
export interface ModelPackage {
  modelNames(): string[];
  /** The fine-tuning checkpoint folder of a shipped model, or undefined for an unknown name. */
  checkpointDir(name: string): string | undefined;
}

/** The package that ships bmc's pretrained detectors; until it is installed no name resolves. */
const MODELS_PACKAGE = '@bmc/models';

/** The checkpoint folder of a shipped model by name; an unknown name is an input error listing the known ones. */
export async function resolveModelName(name: string): Promise<string> {
  const pkg = await import(/* @vite-ignore */ MODELS_PACKAGE).catch(() => undefined);
  const models = pkg as ModelPackage | undefined;
  const dir = models?.checkpointDir(name);
  if (dir) return dir;
  const known = models?.modelNames() ?? [];
  throw new InputError(
    `unknown model name ${name}; known: ${known.length ? known.join(', ') : `none (${MODELS_PACKAGE} is not installed)`}`,
  );
}
