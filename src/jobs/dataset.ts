// Resolves a job's dataset folder inside FQ_DATASETS_DIR (symlinks included) and checks it holds decodable images.
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { FqError } from '../errors.ts';

// The trainer's list (fqgan/images.py IMAGE_EXTENSIONS); sharp decodes all but BMP and PPM/PGM.
const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff', '.ppm', '.pgm']);
const SHARP_READABLE = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff']);
const FILES_PROBED = 8;
const ENTRIES_SCANNED = 10_000; // a quick look, not a full walk of a million-image folder

const refuse = (message: string) => new FqError('validation', `dataset: ${message}`, { fields: [{ field: 'dataset', message }] });

/** The real path of `relative` under `root`; refuses absolute paths, `..` escapes and symlinks that lead out. */
export async function resolveDataset(root: string, relative: string): Promise<string> {
  if (path.isAbsolute(relative)) throw refuse('must be a folder relative to the datasets root, not an absolute path');
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    throw new FqError('disabled', `the datasets root ${root} does not exist; create it or set FQ_DATASETS_DIR`);
  }
  let real: string;
  try {
    real = await realpath(path.resolve(realRoot, relative));
  } catch {
    throw refuse(`folder '${relative}' not found under the datasets root`);
  }
  if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw refuse(`'${relative}' leads outside the datasets root`);
  if (!(await stat(real)).isDirectory()) throw refuse(`'${relative}' is not a folder`);
  return real;
}

/** Finds up to FILES_PROBED image files (breadth-first) and requires one that sharp can read the header of. */
export async function checkHoldsImages(dir: string, shownAs: string): Promise<void> {
  const queue = [dir];
  const candidates: string[] = [];
  let seen = 0;
  let anyImageFile = false;
  while (queue.length && candidates.length < FILES_PROBED && seen < ENTRIES_SCANNED) {
    const folder = queue.shift()!;
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      seen++;
      if (e.name.startsWith('.')) continue;
      const full = path.join(folder, e.name);
      if (e.isDirectory()) queue.push(full);
      else if (IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) {
        anyImageFile = true;
        if (SHARP_READABLE.has(path.extname(e.name).toLowerCase())) candidates.push(full);
      }
    }
  }
  if (!anyImageFile) throw refuse(`'${shownAs}' holds no image files`);
  if (candidates.length === 0) return; // only formats sharp cannot read (BMP, PPM): the trainer's check decides
  for (const file of candidates) {
    const ok = await sharp(file)
      .metadata()
      .then((m) => (m.width ?? 0) > 0 && (m.height ?? 0) > 0, () => false);
    if (ok) return;
  }
  throw refuse(`none of the first ${candidates.length} image files in '${shownAs}' decodes`);
}
