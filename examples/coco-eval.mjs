// Evaluate a COCO results file against a COCO ground-truth file with @bmc/metrics,
// exactly as pycocotools' COCOeval(gt, dt, 'bbox') would, and print the 12 summary numbers.
//
//   node examples/coco-eval.mjs [gt.json] [results.json]
//
// Defaults to a pycocotools fixture case in ../shared (relative to the repo root), or
// $BMC_COCO_CASE (a folder holding gt.json and dt.json).
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluateCoco } from '@bmc/metrics';

const here = dirname(fileURLToPath(import.meta.url));
const caseDir =
  process.env.BMC_COCO_CASE ?? resolve(here, '..', '..', 'shared', 'fixtures', 'coco-eval', 'case_000');
const gtPath = process.argv[2] ?? join(caseDir, 'gt.json');
const dtPath = process.argv[3] ?? join(caseDir, 'dt.json');

const gt = JSON.parse(readFileSync(gtPath, 'utf8'));
const results = JSON.parse(readFileSync(dtPath, 'utf8'));
const { stats } = evaluateCoco(gt, results);

const names = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'];
console.log(`gt: ${gtPath}\nresults: ${dtPath} (${results.length} detections)`);
for (let i = 0; i < names.length; i++) console.log(`${names[i].padEnd(6)} ${stats[i].toFixed(4)}`);
