import { CELL_TYPES, generateSmear, type SmearOptions } from '@bmc/data';
import { cropCell } from './crop.js';
import type { LabelledCrops } from './folders.js';

/**
 * Labelled crops from synthetic smears: the generator already knows each cell's type
 * (`CELL_TYPES`: blast, lymphocyte, band, segmented, eosinophil, plasma), so every drawn cell
 * becomes one crop, cut by its box with the crop rule. Deterministic in `seed`.
 */
export function synthCrops(
  images: number,
  rule: { cropSize: number; margin: number },
  seed = 1,
  smear: SmearOptions = {},
): LabelledCrops {
  const crops: LabelledCrops['crops'] = [];
  const labels: number[] = [];
  const sources: string[] = [];
  for (let i = 0; i < images; i++) {
    const s = generateSmear(seed, i, smear);
    for (let b = 0; b < s.labels.length; b++) {
      const l = s.labels[b]!;
      if (l >= CELL_TYPES.length) continue; // boxed red cells, when asked for
      const box = Array.from(s.boxes.subarray(b * 4, b * 4 + 4)) as [number, number, number, number];
      crops.push(cropCell(s.image, box, rule));
      labels.push(l);
      sources.push(`synthetic seed ${seed} image ${i} cell ${b}`);
    }
  }
  return { classNames: [...CELL_TYPES], crops, labels: Int32Array.from(labels), sources };
}
