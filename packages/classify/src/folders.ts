import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '@bmc/core';
import { decodeImage, reason } from '@bmc/data';
import { cropCell, type RgbImage } from './crop.js';

const IMAGE_EXT = /\.(jpe?g|png|tiff?|webp|bmp)$/i;

export interface LabelledCrops {
  classNames: string[];
  crops: RgbImage[];
  labels: Int32Array;
  /** Source file (or `image#box`) of each crop, for reports. */
  sources: string[];
}

/**
 * Reads a folder with one sub-folder per class of single-cell images (the PBC layout). Each image
 * is treated as the cell's box (the cell centred in it) and cut with the crop rule, margin 0:
 * the centred square, resized to `cropSize`. Errors (missing / unreadable folder, an empty class,
 * an image that does not decode) name the path and are `InputError`s (exit code 2).
 */
export async function readClassFolders(root: string, cropSize: number): Promise<LabelledCrops> {
  let entries: string[];
  try {
    if (!statSync(root).isDirectory()) throw new Error('not a folder');
    entries = readdirSync(root);
  } catch (e) {
    throw new InputError(`${root}: cannot read the class folder: ${reason(e)}`, root);
  }
  const classNames = entries.filter((n) => !n.startsWith('.') && safeIsDir(join(root, n))).sort();
  if (classNames.length < 2)
    throw new InputError(
      `${root}: expected one sub-folder per class (at least 2), found ${classNames.length}`,
      root,
    );
  const crops: RgbImage[] = [];
  const labels: number[] = [];
  const sources: string[] = [];
  for (const [c, name] of classNames.entries()) {
    const dir = join(root, name);
    let files: string[];
    try {
      files = readdirSync(dir)
        .filter((f) => IMAGE_EXT.test(f))
        .sort();
    } catch (e) {
      throw new InputError(`${dir}: cannot read the class folder: ${reason(e)}`, dir);
    }
    if (files.length === 0)
      throw new InputError(`${dir}: class '${name}' has no images (.jpg .png .tif .webp)`, dir);
    for (const f of files) {
      const file = join(dir, f);
      let img: RgbImage;
      try {
        img = await decodeImage(file);
      } catch (e) {
        throw new InputError(`${file}: cannot decode the image: ${reason(e)}`, file);
      }
      crops.push(cropCell(img, [0, 0, img.width, img.height], { cropSize, margin: 0 }));
      labels.push(c);
      sources.push(file);
    }
  }
  return { classNames, crops, labels: Int32Array.from(labels), sources };
}

function safeIsDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
