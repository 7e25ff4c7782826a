// Lists a dataset's image files in the order the reference's ImageFolder reads them, with class labels.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { isImageFile } from '../imaging/image-files.ts';

export interface ImageFile {
  path: string;
  /** Index of its first-level folder among the sorted class folders (ImageFolder layout), else 0. */
  label: number;
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, out);
    else if (entry.isFile() && isImageFile(entry.name)) out.push(full);
  }
}

/** Files and folders given on the command line, folders searched recursively. */
export async function findImages(inputs: string[]): Promise<ImageFile[]> {
  const out: ImageFile[] = [];
  for (const input of inputs) {
    const info = await stat(input);
    if (!info.isDirectory()) {
      out.push({ path: input, label: 0 });
      continue;
    }
    const files: string[] = [];
    await walk(input, files);
    const classes = [...new Set(files.map((f) => path.relative(input, f).split(path.sep)).filter((p) => p.length > 1).map((p) => p[0]!))].sort();
    for (const file of files) {
      const first = path.relative(input, file).split(path.sep);
      out.push({ path: file, label: first.length > 1 ? classes.indexOf(first[0]!) : 0 });
    }
  }
  return out;
}
