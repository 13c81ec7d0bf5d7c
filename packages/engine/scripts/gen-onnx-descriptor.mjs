// Regenerates src/onnx-descriptor.json (protobufjs JSON descriptor) from proto/onnx.proto,
// the ONNX IR schema copied verbatim from the onnx project (Apache-2.0, onnx 1.12).
// Run: node scripts/gen-onnx-descriptor.mjs
import { renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const root = protobuf.loadSync(here('../proto/onnx.proto'));
const json = JSON.stringify(root.toJSON({ keepComments: false }));
const out = here('../src/onnx-descriptor.json');
writeFileSync(`${out}.tmp`, `${json}\n`);
renameSync(`${out}.tmp`, out);
console.log(`wrote ${out} (${json.length} bytes)`);
