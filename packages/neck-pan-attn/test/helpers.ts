import { networkTestHelpers } from '@bmc/test-utils';
import * as tf from '@tensorflow/tfjs';

export { type ArrayFixture, relativeMaxDiff } from '@bmc/test-utils';
export const { FIXTURES, readJson, readBytes, useCpu } = networkTestHelpers(import.meta.url, tf);
