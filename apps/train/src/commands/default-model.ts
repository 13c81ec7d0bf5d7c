import { existsSync } from 'node:fs';
import { InputError, UsageError } from '@bmc/core';
import type { DefaultModel } from '@bmc/infer/commands';

/**
 * The model `bmc detect` and `bmc serve` run without `-m`: @bmc/models' default (the blood-smear
 * detector). @bmc/models is an optional dependency of the bmc command, loaded only here, so a bmc
 * without it still runs every other command and asks for `-m`.
 */
export async function shippedDefaultModel(): Promise<DefaultModel> {
  let models: typeof import('@bmc/models');
  try {
    models = await import('@bmc/models');
  } catch {
    throw new UsageError(
      'no model: pass -m <model.onnx> (from bmc export); the default model comes with @bmc/models, which is not installed',
    );
  }
  const path = models.modelPath();
  if (!existsSync(path)) {
    throw new InputError(`@bmc/models: ${path} is missing (a broken install? reinstall @bmc/models)`, path);
  }
  return { path, name: `${models.DEFAULT_MODEL} from @bmc/models` };
}
