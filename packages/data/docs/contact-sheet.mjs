// Regenerates docs/contact-sheet.png: `pnpm build && node docs/contact-sheet.mjs`.
// Eight 256 x 256 fields from eight stain batches (slides); the bottom row shows the boxes.
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { contactSheet, generateSmear } from '../dist/index.js';

const opts = { width: 256, height: 256, cellSize: [20, 48] };
const items = [];
for (let k = 0; k < 8; k++) {
  const s = generateSmear(2024, k * 8, { ...opts, density: 0.2 + 0.05 * (k % 4) });
  items.push(k < 4 ? { image: s.image } : { image: s.image, boxes: s.boxes });
}
// A palette PNG keeps the README image small (a few hundred KB instead of 1.3 MB).
const png = await sharp(await contactSheet(items, { columns: 4 }))
  .png({ palette: true, quality: 90, effort: 10 })
  .toBuffer();
writeFileSync(new URL('./contact-sheet.png', import.meta.url), png);
