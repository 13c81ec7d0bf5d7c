// Regenerates src/onnx/onnx-descriptor.json (a protobufjs JSON descriptor) from
// proto/onnx.proto, the ONNX IR schema copied verbatim from onnx 1.12 (Apache-2.0,
// Debian's python3-onnx: /usr/lib/python3/dist-packages/onnx/onnx.proto).
// The JSON form lets the bundle use protobufjs/light without reading files at run time.
// Run: pnpm gen:proto
import { renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const root = protobuf.loadSync(here('../proto/onnx.proto'));
const json = JSON.stringify(root.toJSON({ keepComments: false }));
const out = here('../src/onnx/onnx-descriptor.json');
writeFileSync(`${out}.tmp`, `${json}\n`);
renameSync(`${out}.tmp`, out);
console.log(`wrote ${out} (${json.length} bytes)`);
