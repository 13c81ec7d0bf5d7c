import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeSmearSlide } from '@bmc/data';
import sharp from 'sharp';

/**
 * A synthetic pyramidal smear slide at `dir/slide.tif` (`side` px square, smear fields at `origins`)
 * and, as separate PNG images in `dir/fields` (`field0.png`, ...), the first `fieldImages` of its
 * fields: the same cells as a slide and as plain images, for comparing the two paths.
 */
export async function writeSlideAndFields(
  dir: string,
  o: { seed: number; side: number; origins: Array<[number, number]>; fieldImages?: number },
): Promise<void> {
  const fields = await writeSmearSlide(join(dir, 'slide.tif'), {
    seed: o.seed,
    width: o.side,
    height: o.side,
    fields: o.origins,
  });
  mkdirSync(join(dir, 'fields'));
  for (const [k, f] of fields.slice(0, o.fieldImages ?? fields.length).entries())
    await sharp(Buffer.from(f.rgb), { raw: { width: f.size, height: f.size, channels: 3 } })
      .png()
      .toFile(join(dir, 'fields', `field${k}.png`));
}
