import { mulberry32 } from '@bmc/test-utils';
import type { CocoDetection, CocoGroundTruth } from '../src/index.js';

/** Small deterministic PRNG (mulberry32) so random cases are reproducible. */
export const rng = mulberry32;

/** A random GT set with jittered, duplicated and spurious detections (distinct scores). */
export function randomCase(
  seed: number,
  opts: { images?: number; cats?: number; crowd?: number } = {},
): { gt: CocoGroundTruth; dt: CocoDetection[] } {
  const r = rng(seed);
  const nImg = opts.images ?? 12;
  const nCat = opts.cats ?? 3;
  const images = Array.from({ length: nImg }, (_, i) => ({ id: 100 + 7 * i, width: 640, height: 480 }));
  const categories = Array.from({ length: nCat }, (_, k) => ({ id: 1 + 2 * k, name: `c${k}` }));
  const annotations: CocoGroundTruth['annotations'][number][] = [];
  const dt: CocoDetection[] = [];
  let id = 1;
  for (const im of images) {
    const n = Math.floor(r() * 8);
    for (let j = 0; j < n; j++) {
      const w = 4 + r() * 150;
      const h = 4 + r() * 150;
      const x = r() * (640 - w);
      const y = r() * (480 - h);
      const cat = categories[Math.floor(r() * nCat)]!.id;
      const iscrowd = r() < (opts.crowd ?? 0.05) ? 1 : 0;
      annotations.push({
        id: id++,
        image_id: im.id,
        category_id: cat,
        bbox: [x, y, w, h],
        area: w * h,
        iscrowd,
      });
      const copies = r() < 0.8 ? 1 + Math.floor(r() * 2) : 0;
      for (let c = 0; c < copies; c++) {
        const jx = (r() - 0.5) * 0.3 * w;
        const jy = (r() - 0.5) * 0.3 * h;
        dt.push({
          image_id: im.id,
          category_id: cat,
          bbox: [x + jx, y + jy, w * (0.85 + 0.3 * r()), h * (0.85 + 0.3 * r())],
          score: r(),
        });
      }
    }
    const fps = Math.floor(r() * 4);
    for (let j = 0; j < fps; j++) {
      dt.push({
        image_id: im.id,
        category_id: categories[Math.floor(r() * nCat)]!.id,
        bbox: [r() * 500, r() * 380, 5 + r() * 100, 5 + r() * 100],
        score: r() * 0.7,
      });
    }
  }
  return { gt: { images, annotations, categories }, dt };
}

/** `[x, y, w, h]` helper for hand-built cases. */
export function ann(id: number, image_id: number, bbox: number[], category_id = 1, iscrowd = 0) {
  return { id, image_id, category_id, bbox, area: bbox[2]! * bbox[3]!, iscrowd };
}
