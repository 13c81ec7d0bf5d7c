import type { JsonlLog } from '../run/jsonl-log.js';
import type { Optimizer } from './optimizer.js';

/** Weights of the ResNet (`backbone.body.conv1/kernel`, ...), not of the neck (`backbone.fpn.*`). */
const BACKBONE = 'backbone.body.';

/**
 * An optimizer that leaves the backbone alone until step `steps`: its parameters get no update and no
 * weight decay (and, as in PyTorch for a parameter without a gradient, no optimizer state), then train
 * normally. The loop's step counter is read through `step`, so a resumed run keeps the same boundary.
 * Why a wrapper and not `trainable = false`: data-parallel replicas compute gradients for the model's
 * trainable weights as built, so the set must not change under them. The backbone's gradients are
 * still computed and count in the global gradient norm used for clipping; BatchNorm layers that are not
 * frozen still update their running statistics in training mode (as in PyTorch with requires_grad off).
 */
export function freezeBackbone(
  inner: Optimizer,
  steps: number,
  step: () => number,
  io: { say: (line: string) => void; log: Pick<JsonlLog, 'write'> },
): Optimizer {
  let announced = false;
  return {
    get options() {
      return inner.options;
    },
    apply(params, grads, lr) {
      const s = step();
      if (s < steps) {
        inner.apply(
          params.filter((p) => !p.key.startsWith(BACKBONE)),
          grads,
          lr,
        );
        return;
      }
      if (!announced) {
        announced = true;
        io.say(`step ${s}: backbone unfrozen (model.backbone.freezeSteps ${steps})`);
        io.log.write({ event: 'backbone-unfrozen', step: s });
      }
      inner.apply(params, grads, lr);
    },
    state: () => inner.state(),
    counters: () => inner.counters(),
    loadCounters: (c) => inner.loadCounters(c),
    load: (state, params) => inner.load(state, params),
    dispose: () => inner.dispose(),
  };
}
