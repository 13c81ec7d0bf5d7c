import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DataError,
  type Dataset,
  imageNameOf,
  makeImage,
  parseCvat,
  parseLabelStudio,
  readCoco,
  readCvat,
  readLabelStudio,
  readVoc,
  readYolo,
  toLabelStudioTasks,
  writeCoco,
  writeCvat,
  writeLabelStudio,
  writeVoc,
  writeYolo,
} from '../src/index.js';

let dir: string;
let proposals: Dataset;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bmc-tools-'));
  const smears = join(dir, 'smears');
  await sharp({ create: { width: 100, height: 80, channels: 3, background: '#c8a0b4' } })
    .png()
    .toFile(join(await mk(smears), 'a.png'));
  await sharp({ create: { width: 64, height: 48, channels: 3, background: '#ffffff' } })
    .jpeg()
    .toFile(join(smears, 'b.jpg'));
  await sharp({ create: { width: 30, height: 30, channels: 3, background: '#ffffff' } })
    .png()
    .toFile(join(smears, 'empty.png'));
  const withScores = (im: ReturnType<typeof makeImage>, s: number[]) => ({
    ...im,
    scores: Float32Array.from(s),
  });
  proposals = {
    categories: [
      { id: 1, name: 'blast' },
      { id: 2, name: 'rbc' },
    ],
    images: [
      withScores(
        makeImage({
          id: 1,
          file: join(smears, 'a.png'),
          width: 100,
          height: 80,
          // Fractional corners, one box touching the image border.
          boxes: [10.3, 20.6, 30.2, 44.4, 0, 0, 100, 80, 55.5, 10, 61.25, 17.75],
          labels: [0, 1, 0],
        }),
        [0.91, 0.42, 0.3],
      ),
      withScores(
        makeImage({
          id: 2,
          file: join(smears, 'b.jpg'),
          width: 64,
          height: 48,
          boxes: [1, 2, 9, 12],
          labels: [1],
        }),
        [0.77],
      ),
      // An image where the model found nothing: still one to label.
      withScores(
        makeImage({ id: 3, file: join(smears, 'empty.png'), width: 30, height: 30, boxes: [], labels: [] }),
        [],
      ),
    ],
    report: { issues: [] },
  };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function mk(p: string): Promise<string> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(p, { recursive: true });
  return p;
}

/** Boxes of each image by file name, as `name:[x1,y1,x2,y2]` with the category name, sorted. */
function boxesByImage(ds: Dataset): Map<string, { name: string; box: number[] }[]> {
  const out = new Map<string, { name: string; box: number[] }[]>();
  for (const im of ds.images) {
    const base = im.file.split('/').pop()!;
    const list = Array.from(im.labels, (l, k) => ({
      name: ds.categories[l]!.name,
      box: Array.from(im.boxes.subarray(4 * k, 4 * k + 4)),
    }));
    out.set(
      base,
      list.sort((p, q) => p.box[0]! - q.box[0]! || p.box[1]! - q.box[1]!),
    );
  }
  return out;
}

function expectSameBoxes(got: Dataset, tolerance: number): void {
  const want = boxesByImage(proposals);
  const have = boxesByImage(got);
  expect([...have.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [name, boxes] of want) {
    const g = have.get(name)!;
    expect(g.map((b) => b.name)).toEqual(boxes.map((b) => b.name));
    g.forEach((b, k) => {
      for (let c = 0; c < 4; c++)
        expect(Math.abs(b.box[c]! - boxes[k]!.box[c]!)).toBeLessThanOrEqual(tolerance);
    });
  }
}

describe('proposals round-trip through every annotation format (same boxes, to a pixel)', () => {
  it('COCO (keeps scores)', async () => {
    const file = join(dir, 'coco', 'proposals.json');
    await mk(join(dir, 'coco'));
    await writeCoco(proposals, file, { imageRoot: join(dir, 'smears') });
    const back = await readCoco(file, { imageRoot: join(dir, 'smears') });
    expectSameBoxes(back, 1e-4);
    const json = JSON.parse(await readFile(file, 'utf8'));
    expect(json.annotations.map((a: { score: number }) => a.score)).toEqual(
      [0.91, 0.42, 0.3, 0.77].map(Math.fround),
    );
  });

  it('Pascal VOC (integer pixels: within half a pixel)', async () => {
    const root = join(dir, 'voc');
    await writeVoc(proposals, root);
    const back = await readVoc(root, { split: 'default' });
    expectSameBoxes(back, 0.5);
    // 1-based inclusive: the continuous box [10.3, 20.6, 30.2, 44.4] is pixels 11..30 x 22..44.
    const xml = await readFile(join(root, 'Annotations', 'a.xml'), 'utf8');
    expect(xml).toMatch(/<xmin>11<\/xmin>\s*<ymin>22<\/ymin>\s*<xmax>30<\/xmax>\s*<ymax>44<\/ymax>/);
  });

  it('YOLO (normalised, 6 decimals)', async () => {
    const root = join(dir, 'yolo');
    await writeYolo(proposals, root);
    const back = await readYolo(root);
    expectSameBoxes(back, 1e-3);
    // b.jpg's box [1, 2, 9, 12] on 64x48: centre (5/64, 7/48), size (8/64, 10/48); class rbc = 1.
    expect(await readFile(join(root, 'labels', 'b.txt'), 'utf8')).toBe(
      '1 0.078125 0.145833 0.125000 0.208333\n',
    );
    expect(await readFile(join(root, 'labels', 'empty.txt'), 'utf8')).toBe('');
  });

  it('CVAT for images 1.1 (keeps scores as an attribute)', async () => {
    const file = join(dir, 'cvat', 'annotations.xml');
    await mk(join(dir, 'cvat'));
    await writeCvat(proposals, file);
    const back = await readCvat(file, { imageRoot: join(dir, 'smears') });
    expectSameBoxes(back, 0.005);
    expect(Array.from(back.images[0]!.scores!)).toEqual([0.91, 0.42, 0.3].map(Math.fround));
    const xml = await readFile(file, 'utf8');
    expect(xml).toContain('<version>1.1</version>');
    expect(xml).toMatch(/<image id="0" name="a.png" width="100" height="80">/);
  });

  it('Label Studio tasks with predictions (percent of the image, model version, scores)', async () => {
    const file = join(dir, 'ls', 'tasks.json');
    await mk(join(dir, 'ls'));
    await writeLabelStudio(proposals, file, { modelVersion: 'bmc-test@1' });
    const back = await readLabelStudio(file, { imageRoot: join(dir, 'smears'), from: 'predictions' });
    expectSameBoxes(back, 1e-3);
    const tasks = JSON.parse(await readFile(file, 'utf8'));
    expect(tasks[0].data.image).toBe('/data/local-files/?d=a.png');
    expect(tasks[0].predictions[0].model_version).toBe('bmc-test@1');
    const r = tasks[1].predictions[0].result[0];
    // [1, 2, 9, 12] on 64x48: x 1/64, y 2/48, w 8/64, h 10/48, in percent.
    expect(r.value.x).toBeCloseTo(1.5625, 6);
    expect(r.value.y).toBeCloseTo(4.166667, 5);
    expect(r.value.width).toBeCloseTo(12.5, 6);
    expect(r.value.height).toBeCloseTo(20.833333, 5);
    expect([r.original_width, r.original_height, r.score]).toEqual([64, 48, Math.fround(0.77)]);
    expect(r.type).toBe('rectanglelabels');
  });
});

describe('reading what the tools export', () => {
  it('CVAT: a hand-written task export (meta labels, a polygon, an attribute)', async () => {
    const xml = `<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>marrow</name><size>1</size><mode>annotation</mode>
    <labels><label><name>cell</name><color>#ff0000</color><attributes></attributes></label></labels>
  </task></meta>
  <image id="0" name="sub/a.png" width="100" height="80">
    <box label="cell" source="manual" occluded="0" xtl="10.00" ytl="20.00" xbr="30.50" ybr="40.00" z_order="0"></box>
    <polygon label="cell" points="1,1;5,1;5,5" occluded="0" source="manual" z_order="0"></polygon>
  </image>
  <image id="1" name="b.png" width="64" height="48"></image>
</annotations>`;
    const ds = await parseCvat(xml, '/x/annotations.xml', { checkImages: false, policy: 'lenient' });
    expect(ds.categories.map((c) => c.name)).toEqual(['cell']);
    expect(ds.images.map((i) => i.file)).toEqual(['/x/images/sub/a.png', '/x/images/b.png']);
    expect(Array.from(ds.images[0]!.boxes)).toEqual([10, 20, 30.5, 40]);
    expect(ds.images[1]!.labels.length).toBe(0);
    expect(ds.report.issues).toEqual([
      expect.objectContaining({ where: '<image> 1 (name "sub/a.png")', action: 'ignored' }),
    ]);
  });

  it('Label Studio export: the latest submitted annotation counts, cancelled ones and unlabelled tasks do not', async () => {
    const tasks = [
      {
        id: 7,
        data: { image: '/data/upload/3/1a2b3c4d-a.png' },
        annotations: [
          {
            id: 1,
            was_cancelled: false,
            updated_at: '2026-01-01T10:00:00Z',
            result: [rect(10, 25, 20, 30, 'blast')],
          },
          {
            id: 2,
            was_cancelled: false,
            updated_at: '2026-01-02T10:00:00Z',
            result: [rect(50, 50, 10, 10, 'rbc')],
          },
          { id: 3, was_cancelled: true, updated_at: '2026-01-03T10:00:00Z', result: [] },
        ],
        predictions: [],
      },
      { id: 8, data: { image: '/data/local-files/?d=smears/b.jpg' }, annotations: [] },
    ];
    const ds = await parseLabelStudio(JSON.stringify(tasks), join(dir, 'export.json'), {
      imageRoot: join(dir, 'smears'),
      policy: 'lenient',
    });
    expect(ds.images.map((i) => i.file)).toEqual([join(dir, 'smears', 'a.png')]);
    // 50% of 100 x 50% of 80, 10% wide and high.
    expect(Array.from(ds.images[0]!.boxes)).toEqual([50, 40, 60, 48]);
    expect(ds.categories.map((c) => c.name)).toEqual(['rbc']);
    expect(ds.report.issues.map((i) => i.where)).toEqual(['task 2 (id 8), image "b.jpg"']);
  });

  it('image names from Label Studio URLs', () => {
    expect(imageNameOf('/data/local-files/?d=smears/round%201/a%20b.png')).toBe('a b.png');
    expect(imageNameOf('/data/upload/12/0f1e2d3c-smear.jpg')).toBe('smear.jpg');
    expect(imageNameOf('https://bucket.s3.amazonaws.com/x/smear.jpg?X-Amz-Signature=1')).toBe('smear.jpg');
  });

  it('the task score sorts the least certain image first', () => {
    const t = toLabelStudioTasks(proposals, { modelVersion: 'm' }) as { predictions: { score: number }[] }[];
    expect(t.map((x) => x.predictions[0]!.score)).toEqual([Math.fround(0.3), Math.fround(0.77), 1]);
  });
});

function rect(x: number, y: number, w: number, h: number, label: string) {
  return {
    type: 'rectanglelabels',
    from_name: 'label',
    to_name: 'image',
    original_width: 100,
    original_height: 80,
    value: { x, y, width: w, height: h, rotation: 0, rectanglelabels: [label] },
  };
}

describe('malformed CVAT and Label Studio files: errors name the file and the item', () => {
  const cvat = (body: string) =>
    `<?xml version="1.0"?><annotations><version>1.1</version>${body}</annotations>`;
  const cases: [string, string, RegExp][] = [
    [
      'unclosed tag',
      '<annotations><image name="a.png" width="1" height="1"></annotations>',
      /x\.xml: line \d+, column \d+: malformed XML/,
    ],
    ['not CVAT', '<annotation><size/></annotation>', /x\.xml: no <annotations> root element/],
    ['video export', cvat('<track id="0" label="cell"></track>'), /x\.xml: <track>: .*CVAT for images 1\.1/],
    [
      'no size',
      cvat('<image id="0" name="a.png"></image>'),
      /x\.xml: <image> 1 \(name "a\.png"\): width "undefined"/,
    ],
    [
      'no name',
      cvat('<image id="0" width="5" height="5"></image>'),
      /x\.xml: <image> 1: <image> has no name/,
    ],
    [
      'repeated name',
      cvat('<image name="a.png" width="5" height="5"/><image name="a.png" width="5" height="5"/>'),
      /<image> 2 \(name "a\.png"\): image name "a\.png" repeats <image> 1/,
    ],
    [
      'bad coordinate',
      cvat(
        '<image name="a.png" width="5" height="5"><box label="cell" xtl="1" ytl="x" xbr="3" ybr="4"/></image>',
      ),
      /x\.xml: <image> 1 \(name "a\.png"\), <box> 1 \(cell\): ytl "x" is not a number/,
    ],
    [
      'box without label',
      cvat('<image name="a.png" width="5" height="5"><box xtl="1" ytl="1" xbr="3" ybr="4"/></image>'),
      /<box> 1: <box> has no label/,
    ],
    [
      'inverted box',
      cvat(
        '<image name="a.png" width="5" height="5"><box label="c" xtl="3" ytl="1" xbr="1" ybr="4"/></image>',
      ),
      /<image> 1 \(name "a\.png"\), <box> 1 \(c\): box has zero or negative size/,
    ],
  ];
  for (const [what, xml, message] of cases) {
    it(`CVAT: ${what}`, async () => {
      const err = await parseCvat(xml, '/d/x.xml', { checkImages: false }).catch((e) => e);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toMatch(message);
    });
  }

  const ls: [string, string, RegExp][] = [
    ['not JSON', '[{"data": ', /y\.json: malformed JSON/],
    ['not tasks', '{"images": []}', /y\.json: expected a JSON array of Label Studio tasks/],
    ['no image', '[{"data": {}, "annotations": []}]', /y\.json: task 1: "data\.image" is missing/],
    [
      'percent not a number',
      JSON.stringify([
        {
          id: 4,
          data: { image: 'a.png' },
          annotations: [
            {
              result: [
                {
                  ...rect(1, 1, 1, 1, 'c'),
                  value: { x: '1', y: 1, width: 1, height: 1, rectanglelabels: ['c'] },
                },
              ],
            },
          ],
        },
      ]),
      /y\.json: task 1 \(id 4\), image "a\.png", result 1: "value\.x" "1" is not a number/,
    ],
    [
      'two labels on one box',
      JSON.stringify([
        {
          data: { image: 'a.png' },
          annotations: [
            {
              result: [
                {
                  ...rect(1, 1, 1, 1, 'c'),
                  value: { x: 1, y: 1, width: 1, height: 1, rectanglelabels: ['c', 'd'] },
                },
              ],
            },
          ],
        },
      ]),
      /task 1, image "a\.png", result 1: "value\.rectanglelabels" should hold one label/,
    ],
    [
      'box outside the image',
      JSON.stringify([{ data: { image: 'a.png' }, annotations: [{ result: [rect(120, 10, 5, 5, 'c')] }] }]),
      /task 1, image "a\.png", result 1 \(c\): box .* lies outside the 100x80 image/,
    ],
    [
      'image twice',
      JSON.stringify([
        { data: { image: 'a.png' }, annotations: [{ result: [] }] },
        { data: { image: '/data/upload/1/abcdef01-a.png' }, annotations: [{ result: [] }] },
      ]),
      /task 2, image "a\.png": image "a\.png" is labelled again \(also in task 1/,
    ],
  ];
  for (const [what, text, message] of ls) {
    it(`Label Studio: ${what}`, async () => {
      const err = await parseLabelStudio(text, '/d/y.json', { checkImages: false }).catch((e) => e);
      expect(err).toBeInstanceOf(DataError);
      expect(err.message).toMatch(message);
    });
  }

  it('a missing file is named', async () => {
    await expect(readCvat(join(dir, 'nope.xml'))).rejects.toThrow(/nope\.xml: file not found/);
    await writeFile(join(dir, 'empty.json'), '');
    await expect(readLabelStudio(join(dir, 'empty.json'))).rejects.toThrow(/empty\.json: file is empty/);
  });
});
