import { AtssAssigner, type AtssOptions } from './atss.js';
import { MaxIoUAssigner, type MaxIoUOptions } from './max-iou.js';
import { OtaAssigner, type OtaOptions } from './ota.js';
import { PaaAssigner, type PaaOptions } from './paa.js';
import type { Assigner } from './types.js';

/** A serialisable assigner choice, e.g. from a training config file. */
export type AssignerConfig =
  | ({ type: 'maxiou' } & MaxIoUOptions)
  | ({ type: 'atss' } & AtssOptions)
  | ({ type: 'paa' } & PaaOptions)
  | ({ type: 'ota' } & OtaOptions);

/** Builds the assigner a config names. */
export function createAssigner(config: AssignerConfig): Assigner {
  switch (config.type) {
    case 'maxiou':
      return new MaxIoUAssigner(config);
    case 'atss':
      return new AtssAssigner(config);
    case 'paa':
      return new PaaAssigner(config);
    case 'ota':
      return new OtaAssigner(config);
    default:
      throw new RangeError(
        `createAssigner: unknown type ${JSON.stringify((config as { type: unknown }).type)}`,
      );
  }
}
