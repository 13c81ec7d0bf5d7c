#!/usr/bin/env node
/**
 * Writes the split lists (never copies of images) behind @bmc/models' training and its honest held-out
 * measurements, from TXL-PBC as published in ../shared/data/txl-pbc:
 *
 * 1. Source families by image size: TXL-PBC is assembled from several public sets, and each kept its
 *    size: 360x363 (and 366x369) = PBC / CellaVision (Barcelona), 640x480 = BCCD, 416x416 = resized
 *    BCCD-style fields, 575x575 = a further lab (other stain, magnification and focus).
 * 2. Near-duplicates: every image is squeezed to a 16x16 grey thumbnail (aspect ignored, so a resized
 *    copy lands on its original), standardised, and any two images whose thumbnails correlate at
 *    >= THRESHOLD are joined into one group (union-find). A group never straddles two lists.
 * 3. Held out: the whole 575x575 family, with every group that touches it. The shipped model trains on
 *    the rest (TXL-PBC train / val of the other families); its in-distribution test is their TXL-PBC
 *    test split. The held-out source is split by group (a hash of the group's file names) into 200
 *    images for fine-tuning, 100 for its validation and the rest for the held-out test.
 *
 * Run: node packages/models/train/make-splits.mjs [--data ../shared/data/txl-pbc]
 * Output: packages/models/train/splits/{*.txt, shipped.yaml, heldout.yaml, splits.json}
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../..');
const argData = process.argv.indexOf('--data');
const data = resolve(argData > 0 ? process.argv[argData + 1] : join(repo, '../shared/data/txl-pbc'));
const out = join(here, 'splits');
const THRESHOLD = 0.97;
const SIDE = 16;
const HELD_OUT = '575x575';
const FT_TRAIN = 200;
const FT_VAL = 100;

const family = (w, h) =>
  w === 575 && h === 575
    ? '575x575'
    : w === 640 && h === 480
      ? 'bccd-640x480'
      : w === 416 && h === 416
        ? 'bccd-416x416'
        : (w === 360 && h === 363) || (w === 366 && h === 369)
          ? 'pbc-360x363'
          : `other-${w}x${h}`;

const images = [];
for (const split of ['train', 'val', 'test']) {
  const dir = join(data, 'images', split);
  for (const name of readdirSync(dir).sort()) {
    if (!/\.(jpe?g|png)$/i.test(name)) continue;
    images.push({ split, file: join(dir, name), name });
  }
}
await Promise.all(
  images.map(async (im) => {
    const img = sharp(im.file);
    const { width, height } = await img.metadata();
    const px = await img.greyscale().resize(SIDE, SIDE, { fit: 'fill' }).raw().toBuffer();
    const v = Float64Array.from(px);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    let ss = 0;
    for (let i = 0; i < v.length; i++) {
      v[i] -= mean;
      ss += v[i] * v[i];
    }
    const norm = Math.sqrt(ss) || 1;
    for (let i = 0; i < v.length; i++) v[i] /= norm;
    Object.assign(im, { width, height, family: family(width, height), thumb: v });
  }),
);

// Union-find over near-duplicate pairs.
const parent = images.map((_, i) => i);
const find = (i) => (parent[i] === i ? i : (parent[i] = find(parent[i])));
let pairs = 0;
const crossFamilyPairs = {};
for (let i = 0; i < images.length; i++) {
  for (let j = i + 1; j < images.length; j++) {
    const a = images[i].thumb;
    const b = images[j].thumb;
    let r = 0;
    for (let k = 0; k < a.length; k++) r += a[k] * b[k];
    if (r < THRESHOLD) continue;
    pairs++;
    if (images[i].family !== images[j].family) {
      const key = [images[i].family, images[j].family].sort().join(' ~ ');
      crossFamilyPairs[key] = (crossFamilyPairs[key] ?? 0) + 1;
    }
    parent[find(i)] = find(j);
  }
}
const groups = new Map();
images.forEach((im, i) => {
  const g = find(i);
  if (!groups.has(g)) groups.set(g, []);
  groups.get(g).push(im);
});
const groupOf = new Map();
for (const [g, members] of groups) for (const m of members) groupOf.set(m, g);

const heldGroups = new Set(
  [...groups].filter(([, ms]) => ms.some((m) => m.family === HELD_OUT)).map(([g]) => g),
);
const lists = {
  'shipped-train': [],
  'shipped-val': [],
  'public-test': [],
  'heldout-train': [],
  'heldout-val': [],
  'heldout-test': [],
};
for (const im of images) {
  if (heldGroups.has(groupOf.get(im))) continue;
  lists[{ train: 'shipped-train', val: 'shipped-val', test: 'public-test' }[im.split]].push(im);
}
// The held-out source, whole groups in a fixed pseudo-random order.
const held = [...heldGroups]
  .map((g) => groups.get(g))
  .map((ms) => ({
    ms,
    key: createHash('sha1')
      .update(
        ms
          .map((m) => m.name)
          .sort()
          .join('\n'),
      )
      .digest('hex'),
  }))
  .sort((a, b) => (a.key < b.key ? -1 : 1));
for (const { ms } of held) {
  const to =
    lists['heldout-train'].length < FT_TRAIN
      ? 'heldout-train'
      : lists['heldout-val'].length < FT_VAL
        ? 'heldout-val'
        : 'heldout-test';
  lists[to].push(...ms);
}
// Leakage that TXL-PBC's own split has between the shipped model's train and its public test.
const trainGroups = new Set(lists['shipped-train'].map((m) => groupOf.get(m)));
const publicTestWithTwinInTrain = lists['public-test'].filter((m) => trainGroups.has(groupOf.get(m))).length;

const writeAtomic = (file, text) => {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
};
const count = (ms) => {
  const byFamily = {};
  for (const m of ms) byFamily[m.family] = (byFamily[m.family] ?? 0) + 1;
  return { images: ms.length, byFamily };
};
for (const [name, ms] of Object.entries(lists)) {
  const lines = ms.map((m) => relative(out, m.file)).sort();
  writeAtomic(
    join(out, `${name}.txt`),
    `# written by make-splits.mjs; paths relative to this file\n${lines.join('\n')}\n`,
  );
}
const names = "names: ['WBC', 'RBC', 'Platelets']\n";
writeAtomic(
  join(out, 'shipped.yaml'),
  `# TXL-PBC without the held-out 575x575 source (make-splits.mjs)\ntrain: shipped-train.txt\nval: shipped-val.txt\ntest: public-test.txt\n${names}`,
);
writeAtomic(
  join(out, 'heldout.yaml'),
  `# the held-out 575x575 source: fine-tuning set, its validation, the held-out test (make-splits.mjs)\ntrain: heldout-train.txt\nval: heldout-val.txt\ntest: heldout-test.txt\n${names}`,
);
// Cell sizes per source at its own resolution (median sqrt(w h) of the boxes per class), and boxes
// per image: what "pixel scale" means for each source.
const CLASSES = ['WBC', 'RBC', 'Platelets'];
const sizes = {};
for (const im of images) {
  const label = im.file.replace(/\/images\/([^/]+)\/([^/]+)\.[a-z]+$/i, '/labels/$1/$2.txt');
  const f = (sizes[im.family] ??= { images: 0, boxes: 0, side: { WBC: [], RBC: [], Platelets: [] } });
  f.images++;
  for (const line of readFileSync(label, 'utf8').split('\n')) {
    const t = line.trim().split(/\s+/);
    if (t.length !== 5) continue;
    f.boxes++;
    f.side[CLASSES[Number(t[0])]]?.push(Math.sqrt(Number(t[3]) * im.width * Number(t[4]) * im.height));
  }
}
const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? Math.round(s[s.length >> 1]) : null;
};
const sources = Object.fromEntries(
  Object.entries(sizes).map(([k, f]) => [
    k,
    {
      images: f.images,
      boxesPerImage: Math.round((f.boxes / f.images) * 10) / 10,
      medianBoxSidePx: Object.fromEntries(Object.entries(f.side).map(([c, v]) => [c, median(v)])),
    },
  ]),
);
const summary = {
  script: 'packages/models/train/make-splits.mjs',
  data: relative(repo, data),
  nearDuplicate: {
    thumbnail: `${SIDE}x${SIDE} grey, aspect ignored`,
    minCorrelation: THRESHOLD,
    pairs,
    crossFamilyPairs,
  },
  groups: groups.size,
  heldOutSource: HELD_OUT,
  families: count(images).byFamily,
  sources,
  lists: Object.fromEntries(Object.entries(lists).map(([k, ms]) => [k, count(ms)])),
  publicTestWithTwinInTrain,
};
writeAtomic(join(out, 'splits.json'), `${JSON.stringify(summary, null, 2)}\n`);
console.log(JSON.stringify(summary, null, 2));
