import { stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { InputError } from '@bmc/core';
import { fsErrorText } from '@bmc/data';
import { glob, isDynamicPattern } from 'tinyglobby';
import { IMAGE_EXTENSIONS } from './image.js';

const isImage = (p: string) => (IMAGE_EXTENSIONS as readonly string[]).includes(extname(p).toLowerCase());

/**
 * Expands CLI arguments into image files: a file is taken as is (whatever its
 * extension, so a mislabelled file is still tried and reported), a folder
 * gives its image files (recursively), a glob its matches. Sorted, deduplicated,
 * absolute. Throws when an argument matches nothing, naming it.
 */
export async function expandInputs(args: readonly string[], cwd = process.cwd()): Promise<string[]> {
  const found = new Set<string>();
  for (const arg of args) {
    const before = found.size;
    const st = await stat(resolve(cwd, arg)).catch((e: NodeJS.ErrnoException) => {
      // A symlink loop or a forbidden folder is not "no such file" (and not a glob either).
      if (e.code !== 'ENOENT') throw new InputError(`${arg}: ${fsErrorText(e)}`, arg);
      return undefined;
    });
    if (st && !st.isFile() && !st.isDirectory()) {
      // A FIFO, socket or device: opening it could block forever or never end.
      throw new InputError(`${arg}: not a regular file or folder (a FIFO, socket or device)`, arg);
    }
    if (st?.isFile()) {
      found.add(resolve(cwd, arg));
    } else if (st?.isDirectory()) {
      const files = await glob('**/*', {
        cwd: resolve(cwd, arg),
        absolute: true,
        onlyFiles: true,
        caseSensitiveMatch: false,
      });
      for (const f of files) if (isImage(f)) found.add(resolve(f));
    } else if (isDynamicPattern(arg)) {
      for (const f of await glob(arg, { cwd, absolute: true, onlyFiles: true })) found.add(resolve(f));
    } else {
      throw new InputError(`${arg}: no such file or folder`, arg);
    }
    if (found.size === before) throw new InputError(`${arg}: no images found`, arg);
  }
  return [...found].sort();
}
