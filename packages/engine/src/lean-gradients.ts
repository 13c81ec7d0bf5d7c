import * as tf from '@tensorflow/tfjs-core';

/**
 * Memory-lean reverse mode for tfjs training steps. Same operations in the same order as
 * `tf.variableGrads`, so the gradients are bit-identical; only the lifetime of tensors changes.
 *
 * tfjs-core 4.22's `engine.gradients` keeps every forward tensor saved for backward (`node.saved`) and
 * the accumulated gradient of every intermediate tensor until the whole backward pass has finished, so a
 * step's peak is roughly "all saved activations + a gradient for each of them". The wasm heap grows to
 * that peak and never shrinks (4 GiB at most). Here:
 * - nodes that do not lie on a path from the variables to the loss (frozen stages, statistics of frozen
 *   layers) give up their saved tensors before the backward pass starts;
 * - a node's saved tensors are released right after its gradient has been computed;
 * - the gradient of a tensor is released once the node that produced it has consumed it (reverse
 *   topological order: every consumer has added its share by then).
 */

/** The parts of tfjs-core's Engine that reverse mode needs (internal API, pinned by the peer range). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  saved?: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number; kernelDepth: number };
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  startTape(): void;
  endTape(): void;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
}

function engineInternals(): EngineInternals {
  const e = tf.engine() as unknown as Partial<EngineInternals>;
  if (
    typeof e.scopedRun !== 'function' ||
    typeof e.startTape !== 'function' ||
    typeof e.endTape !== 'function' ||
    e.state == null ||
    !('gradientDepth' in e.state)
  ) {
    throw new Error(
      '@bmc/engine leanVariableGrads: this @tensorflow/tfjs-core has no engine.scopedRun/startTape/state.gradientDepth (written against 4.22)',
    );
  }
  return e as EngineInternals;
}

function disposeSaved(node: TapeNode): void {
  if (!node.saved) return;
  for (const t of node.saved) t.dispose();
  node.saved = [];
}

/** Tape nodes on a path from `xs` to `y`, inputs pruned to those that depend on `xs` (tfjs' own rule). */
function nodesFromXsToY(tape: TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      for (const o of node.outputs) fromX.add(o.id);
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodesToY.add(node.id);
    }
  }
  const out: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [name, t] of Object.entries(node.inputs)) if (fromX.has(t.id)) inputs[name] = t;
    out.push({ ...node, inputs });
  }
  return out;
}

/**
 * `tf.grads`-style reverse mode of a scalar `f` with respect to `xs` (undefined where `f` does not depend
 * on one), releasing saved tensors and intermediate gradients as early as possible. Not for higher-order
 * gradients (throws inside another gradient computation).
 */
export function leanGradients(
  f: () => tf.Scalar,
  xs: readonly tf.Tensor[],
): { value: tf.Scalar; grads: (tf.Tensor | undefined)[] } {
  const engine = engineInternals();
  if (engine.state.gradientDepth !== 0) {
    throw new Error('leanGradients: called inside another gradient computation (higher-order gradients)');
  }
  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  const tape = engine.state.activeTape ?? [];
  try {
    if (!(y instanceof tf.Tensor) || y.rank !== 0)
      throw new Error('leanGradients: f must return a scalar tensor');
    const filtered = nodesFromXsToY(tape, xs, y);
    const onPath = new Set(filtered.map((n) => n.id));
    // Saved tensors of nodes off every x -> y path are never read (tfjs keeps them to the end).
    for (const node of tape) if (!onPath.has(node.id)) disposeSaved(node);
    const xIds = new Set(xs.map((x) => x.id));
    const grads = engine.tidy('backward', () => {
      const acc = new Map<number, tf.Tensor>();
      // How many entries of `acc` hold each gradient tensor: a gradient function may hand the same
      // tensor to two inputs, and only its last holder may dispose it.
      const holders = new Map<number, number>();
      const hold = (id: number, g: tf.Tensor) => {
        acc.set(id, g);
        holders.set(g.id, (holders.get(g.id) ?? 0) + 1);
      };
      const release = (id: number) => {
        const g = acc.get(id);
        if (!g) return;
        acc.delete(id);
        const n = (holders.get(g.id) ?? 1) - 1;
        if (n > 0) holders.set(g.id, n);
        else {
          holders.delete(g.id);
          g.dispose();
        }
      };
      hold(y.id, tf.ones(y.shape));
      for (let i = filtered.length - 1; i >= 0; i--) {
        const node = filtered[i]!;
        const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
        if (node.gradient == null) {
          throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
        }
        const inputGradients = node.gradient(dys);
        for (const [name, x] of Object.entries(node.inputs)) {
          const gradFn = inputGradients[name];
          if (!gradFn) {
            throw new Error(
              `Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`,
            );
          }
          const dx = engine.tidy(() => gradFn());
          if (dx.dtype !== 'float32') {
            throw new Error(
              `Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`,
            );
          }
          if (!tf.util.arraysEqual(dx.shape, x.shape)) {
            throw new Error(
              `Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
            );
          }
          const cur = acc.get(x.id);
          if (cur == null) hold(x.id, dx);
          else {
            const sum = tf.add(cur, dx);
            release(x.id);
            hold(x.id, sum);
          }
        }
        disposeSaved(node);
        // Every consumer of this node's outputs came later on the tape and has been processed.
        for (const o of node.outputs) if (!xIds.has(o.id)) release(o.id);
      }
      return xs.map((x) => acc.get(x.id));
    });
    return { value: y as tf.Scalar, grads };
  } finally {
    for (const node of tape) disposeSaved(node);
    engine.state.activeTape = null;
  }
}

/**
 * `tf.variableGrads` with {@link leanGradients}: the loss and the gradient of each trainable variable in
 * `varList` that the loss depends on, keyed by variable name.
 */
export function leanVariableGrads(
  f: () => tf.Scalar,
  varList: readonly tf.Variable[],
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const trainable = varList.filter((v) => v.trainable);
  if (trainable.length === 0) throw new Error('leanVariableGrads: no trainable variables');
  const { value, grads } = leanGradients(f, trainable);
  if (!grads.some((g) => g != null)) {
    tf.dispose(value);
    throw new Error(
      'Cannot find a connection between any variable and the result of the loss function y=f(x). Please make sure the operations that use variables are inside the function f passed to minimize().',
    );
  }
  const named: tf.NamedTensorMap = {};
  trainable.forEach((v, i) => {
    const g = grads[i];
    if (g != null) named[v.name] = g;
  });
  return { value, grads: named };
}

/**
 * Runs `f` with the gradient tape off although a gradient computation is in progress: for sub-graphs
 * whose outputs do not depend on any variable being differentiated (frozen stages), which tfjs would
 * otherwise record and keep the saved tensors of until the end of the step.
 */
export function withoutTape<T>(f: () => T): T {
  const engine = engineInternals();
  const depth = engine.state.gradientDepth;
  if (depth === 0) return f();
  engine.state.gradientDepth = 0;
  try {
    return f();
  } finally {
    engine.state.gradientDepth = depth;
  }
}

let reluSavesOutput = false;

/**
 * Re-registers the gradient of `Relu` to save the op's output instead of its input: `relu(x) > 0` exactly
 * when `x > 0`, so `dy * step(y)` equals tfjs' `dy * step(x)` bit for bit, and the output is the tensor
 * the next layer (a convolution) saves anyway, while the input (a BatchNorm or an addition's result)
 * would otherwise be kept alive for this alone. Idempotent.
 */
export function registerLeanReluGradient(): void {
  if (reluSavesOutput) return;
  tf.registerGradient({
    kernelName: 'Relu',
    outputsToSave: [true],
    gradFunc: (dy, saved) => {
      const [y] = saved as [tf.Tensor];
      return { x: () => tf.mul(dy as tf.Tensor, tf.step(tf.cast(y, 'float32'))) };
    },
  });
  reluSavesOutput = true;
}

/** Kernels whose tfjs gradient reads only the shapes of the tensors it saves (Add_grad.js etc. in 4.22). */
const SHAPE_ONLY_GRADIENTS = new Set(['Add', 'Sub', 'PadV2', 'Reshape', 'Concat', 'AddN']);

interface TapeHooks {
  runKernel(name: string, inputs: unknown, attrs?: Record<string, unknown>): unknown;
  addTapeNode(
    kernelName: string,
    inputs: unknown,
    outputs: tf.Tensor[],
    gradientsFunc: unknown,
    saved: tf.Tensor[],
    attrs: unknown,
  ): void;
}

let tapeHooked = false;

/**
 * Makes the gradient tape keep less (idempotent; gradients unchanged):
 * - {@link registerLeanReluGradient};
 * - the tensors saved for `Add`, `Sub`, `PadV2`, `Reshape`, `Concat` and `AddN` are released as soon as
 *   the op is recorded: their gradients read only the saved tensors' shapes, which a released tensor
 *   keeps (an addition in a residual block would otherwise keep both full-size inputs, a padding its input);
 * - the output that `tf.fused.conv2d` saves is released when the convolution's activation is linear: its
 *   gradient reads the output only to differentiate a non-linear activation (`getFusedDyActivation`).
 *   The activation is taken from the `FusedConv2D` kernel call the op makes just before it is recorded.
 */
export function installLeanTape(): void {
  registerLeanReluGradient();
  if (tapeHooked) return;
  const engine = tf.engine() as unknown as TapeHooks;
  if (typeof engine.runKernel !== 'function' || typeof engine.addTapeNode !== 'function') {
    throw new Error(
      '@bmc/engine installLeanTape: this @tensorflow/tfjs-core has no engine.runKernel/addTapeNode',
    );
  }
  const runKernel = engine.runKernel;
  const addTapeNode = engine.addTapeNode;
  let fusedActivation: string | undefined;
  engine.runKernel = function (this: TapeHooks, name, inputs, attrs) {
    if (name === 'FusedConv2D') fusedActivation = (attrs?.activation as string | undefined) ?? 'linear';
    return runKernel.call(this, name, inputs, attrs);
  };
  engine.addTapeNode = function (this: TapeHooks, kernelName, inputs, outputs, gradientsFunc, saved, attrs) {
    if (SHAPE_ONLY_GRADIENTS.has(kernelName)) {
      for (const t of saved) t.dispose();
    } else if (kernelName.startsWith('fusedConv2d') && saved.length >= 3) {
      // saved = [filter, x, y(, bias)] (tfjs-core ops/fused/conv2d.ts)
      if (fusedActivation === 'linear') saved[2]!.dispose();
      fusedActivation = undefined;
    }
    return addTapeNode.call(this, kernelName, inputs, outputs, gradientsFunc, saved, attrs);
  };
  tapeHooked = true;
}
