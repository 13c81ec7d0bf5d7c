import { UsageError } from '@bmc/core';

/** The model `detect` / `serve` use when `-m` is not given: a file and a name to print. */
export interface DefaultModel {
  /** ONNX file. */
  path: string;
  /** What to call it in the one line that says which model runs, e.g. `blood-smear (@bmc/models 0.1.0)`. */
  name: string;
}

/**
 * Resolves the default model. @bmc/infer ships no model itself: the program that registers the commands
 * passes a resolver (the `bmc` binary resolves @bmc/models' `blood-smear`), so this package never
 * depends on a model package's files by path.
 */
export type DefaultModelResolver = () => Promise<DefaultModel>;

/**
 * The model file a command runs: `-m` when given, else the resolver's default. `say` gets one line
 * naming the model (stderr in the CLI), so nobody mistakes the shipped model for their own.
 */
export async function resolveModel(
  explicit: string | undefined,
  resolver: DefaultModelResolver | undefined,
  say: (line: string) => void,
): Promise<string> {
  if (explicit !== undefined) return explicit;
  if (!resolver) {
    throw new UsageError(
      'no model: pass -m <model.onnx> (from bmc export), or install @bmc/models for the default blood-smear detector',
    );
  }
  const m = await resolver();
  say(`model: ${m.name} (no -m given): ${m.path}`);
  return m.path;
}
