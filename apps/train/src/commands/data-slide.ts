import { UsageError } from '@bmc/core';
import { writeSmearSlide } from '@bmc/data';

export interface DataSlideOptions {
  side: number;
  fields: number;
  seed: number;
  compression: 'deflate' | 'jpeg';
}

/** Field side on the slide (smear plus glass margin), as writeSmearSlide's default. */
const FIELD = 320;

/**
 * `bmc data slide`: a synthetic whole slide for trying and benchmarking slide detection: a square
 * pyramidal BigTIFF of glass with `fields` smear fields, one per cell of a square grid (corners on
 * a 32 px grid, the model's size multiple), so most of it is glass as on a real smear's scan.
 */
export async function dataSlide(out: string, o: DataSlideOptions): Promise<string> {
  const n = Math.ceil(Math.sqrt(o.fields));
  const pitch = Math.floor(o.side / n / 32) * 32;
  if (pitch < FIELD)
    throw new UsageError(
      `--fields ${o.fields} --side ${o.side}: ${n} x ${n} fields of ${FIELD} px do not fit`,
    );
  const at = (k: number) => k * pitch + Math.floor((pitch - FIELD) / 64) * 32;
  const fields: Array<[number, number]> = [];
  for (let k = 0; k < o.fields; k++) fields.push([at(k % n), at(Math.floor(k / n))]);
  const written = await writeSmearSlide(out, {
    seed: o.seed,
    width: o.side,
    height: o.side,
    fields,
    compression: o.compression,
  });
  const cells = written.reduce((s, f) => s + f.boxes.length / 4, 0);
  return `wrote ${out}: ${o.side} x ${o.side} pyramidal BigTIFF (${o.compression} tiles), ${written.length} fields, ${cells} cells`;
}
