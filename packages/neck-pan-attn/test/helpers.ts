import { fixtures } from '@bmc/test-utils';
import * as tf from '@tensorflow/tfjs';

export { relativeMaxDiff } from '@bmc/test-utils';

const fx = fixtures(import.meta.url);
export const FIXTURES = fx.dir;

export interface ArrayFixture {
  shape: number[];
  data: number[];
}

export function readJson<T>(name: string): T {
  return fx.json<T>(name);
}

export function readBytes(name: string): Uint8Array {
  return fx.bytes(name);
}

export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}
