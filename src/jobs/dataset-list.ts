// Lists the datasets a fine-tuning job may name: the folders directly under FQ_DATASETS_DIR, with a quick image count.
import { readdir, realpath } from 'node:fs/promises';
import type { Dirent } from 'node:fs';
import path from 'node:path';
import { FqError } from '../errors.ts';
import { isImageFile } from '../imaging/image-files.ts';
import { entryKind, resolveDataset } from './dataset.ts';

/** Entries looked at per dataset: a count for a form, not a census of a million-image folder. */
const ENTRIES_SCANNED = 10_000;

export interface DatasetSummary {
  name: string;
  /** Image files found (by extension) within the entries scanned. */
  images: number;
  /** False when the scan stopped at ENTRIES_SCANNED: there are at least `images`. */
  complete: boolean;
  /** Why a job naming it would be refused, or null. */
  problem: string | null;
}

export async function listDatasets(root: string): Promise<DatasetSummary[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(await realpath(root), { withFileTypes: true });
  } catch {
    throw new FqError('disabled', `the datasets root ${root} does not exist; create it or set FQ_DATASETS_DIR`);
  }
  const names = entries.filter((e) => !e.name.startsWith('.') && (e.isDirectory() || e.isSymbolicLink())).map((e) => e.name);
  const summaries: DatasetSummary[] = [];
  for (const name of names.sort((a, b) => a.localeCompare(b))) {
    try {
      const folder = await resolveDataset(root, name);
      const { images, complete } = await countImages(folder.dir, folder.root);
      summaries.push({ name, images, complete, problem: images === 0 ? 'holds no image files' : null });
    } catch (err) {
      if (!(err instanceof FqError) || err.kind !== 'validation') throw err;
      const message = err.fields?.[0]?.message ?? err.message;
      if (/not a folder/.test(message)) continue; // a link to a file: not a dataset at all
      summaries.push({ name, images: 0, complete: true, problem: message });
    }
  }
  return summaries;
}

/** Breadth-first, links followed only while their real path stays under the root, each real folder once. */
async function countImages(dir: string, root: string): Promise<{ images: number; complete: boolean }> {
  const queue = [dir];
  const seen = new Set(queue);
  let images = 0;
  let scanned = 0;
  while (queue.length) {
    const folder = queue.shift()!;
    for (const e of await readdir(folder, { withFileTypes: true }).catch(() => [] as Dirent[])) {
      if (++scanned > ENTRIES_SCANNED) return { images, complete: false };
      if (e.name.startsWith('.')) continue;
      const full = path.join(folder, e.name);
      const kind = await entryKind(e, full, root);
      if (kind === 'file' && isImageFile(e.name)) images++;
      if (kind === 'folder') {
        const real = e.isSymbolicLink() ? await realpath(full) : full;
        if (!seen.has(real)) queue.push(real), seen.add(real);
      }
    }
  }
  return { images, complete: true };
}
