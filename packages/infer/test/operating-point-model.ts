import { readFile, writeFile } from 'node:fs/promises';
import type { OperatingPoint } from '@bmc/export/metadata';

const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
};
/** A length-delimited protobuf field. */
const field = (num: number, body: Uint8Array) =>
  Buffer.concat([Buffer.from([...varint((num << 3) | 2), ...varint(body.length)]), body]);

/**
 * A copy of a bmc ONNX file with a `bmc.operating_point` entry: the entry is appended as one more
 * `ModelProto.metadata_props` field (14, a `StringStringEntryProto` of key 1 and value 2), which
 * protobuf merges into the repeated field, so the graph and weights stay byte-identical. Lets
 * tests give the hand-designed fixture an operating point.
 */
export async function withOperatingPoint(src: string, dst: string, op: OperatingPoint): Promise<string> {
  const entry = Buffer.concat([
    field(1, Buffer.from('bmc.operating_point')),
    field(2, Buffer.from(JSON.stringify(op))),
  ]);
  await writeFile(dst, Buffer.concat([await readFile(src), field(14, entry)]));
  return dst;
}
