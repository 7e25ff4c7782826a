// Resolves a job's dataset (a folder directly under FQ_DATASETS_DIR) and checks it holds decodable images, never reading outside the root.
import { readdir, realpath, stat } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { FqError, quoted } from '../errors.ts';
import { isImageFile, isSharpReadable } from '../imaging/image-files.ts';

const FILES_PROBED = 8;
const ENTRIES_SCANNED = 10_000; // a quick look, not a full walk of a million-image folder

const refuse = (message: string) => new FqError('validation', `dataset: ${message}`, { fields: [{ field: 'dataset', message }] });

export interface DatasetFolder {
  /** The dataset's real path. */
  dir: string;
  /** The datasets root's real path: no file whose real path is outside it is read. */
  root: string;
}

/**
 * A dataset is named by one folder name directly under the root: '.', '..', '' and anything with a
 * path separator are refused. Symbolic links are allowed while their real path stays inside the
 * root (so is the trainer's rule, fqgan/images.py); the dataset may not be the root itself.
 */
export async function resolveDataset(root: string, name: string): Promise<DatasetFolder> {
  if (name === '' || name === '.' || name === '..' || ['/', '\\', '\0'].some((c) => name.includes(c))) {
    throw refuse(`must be the name of a folder directly under the datasets root (no '/', '.' or '..'), got ${quoted(name)}`);
  }
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    throw new FqError('disabled', `the datasets root ${root} does not exist; create it or set FQ_DATASETS_DIR`);
  }
  let real: string;
  try {
    real = await realpath(path.join(realRoot, name));
  } catch {
    throw refuse(`folder ${quoted(name)} not found under the datasets root`);
  }
  if (real === realRoot) throw refuse(`${quoted(name)} is the datasets root itself`);
  if (!isInside(real, realRoot)) throw refuse(`${quoted(name)} leads outside the datasets root`);
  if (!(await stat(real)).isDirectory()) throw refuse(`${quoted(name)} is not a folder`);
  return { dir: real, root: realRoot };
}

export const isInside = (real: string, realRoot: string) => real === realRoot || real.startsWith(realRoot + path.sep);

/**
 * Finds up to FILES_PROBED image files (breadth-first) and requires one that sharp can read the header of.
 * A link whose real path leaves the root is refused, and neither it nor anything behind it is opened.
 */
export async function checkHoldsImages(dataset: DatasetFolder, shownAs: string): Promise<void> {
  const queue = [dataset.dir];
  const seen = new Set(queue);
  const candidates: string[] = [];
  let scanned = 0;
  let anyImageFile = false;
  while (queue.length && candidates.length < FILES_PROBED && scanned < ENTRIES_SCANNED) {
    const folder = queue.shift()!;
    const entries: Dirent[] = await readdir(folder, { withFileTypes: true }).catch(() => []);
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      scanned++;
      if (e.name.startsWith('.')) continue;
      const full = path.join(folder, e.name);
      const kind = await entryKind(e, full, dataset.root);
      if (kind === 'outside') throw refuse(`'${path.join(shownAs, path.relative(dataset.dir, full))}' leads outside the datasets root`);
      if (kind === 'folder') {
        const real = e.isSymbolicLink() ? await realpath(full) : full;
        if (!seen.has(real)) queue.push(real), seen.add(real); // a link back up is walked once
      } else if (kind === 'file' && isImageFile(e.name)) {
        anyImageFile = true;
        if (isSharpReadable(e.name)) candidates.push(full);
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

/** What an entry is once links are resolved; a link is looked through (realpath, stat), never opened. */
export async function entryKind(e: Dirent, full: string, realRoot: string): Promise<'file' | 'folder' | 'outside' | 'other'> {
  if (!e.isSymbolicLink()) return e.isDirectory() ? 'folder' : e.isFile() ? 'file' : 'other';
  const real = await realpath(full).catch(() => undefined);
  if (real === undefined) return 'other'; // a dangling link: nothing to read
  if (!isInside(real, realRoot)) return 'outside';
  const info = await stat(real).catch(() => undefined);
  return info?.isDirectory() ? 'folder' : info?.isFile() ? 'file' : 'other';
}
