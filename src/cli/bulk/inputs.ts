// What `fqtok encode` was given to read: WebDataset tar shards (paths, globs, brace ranges), or image folders,
// image files and file lists.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import braces from 'braces';
import { glob, isDynamicPattern } from 'tinyglobby';
import { findImages, type ImageFile } from '../find-images.ts';

export type Inputs = { kind: 'shards'; shards: string[] } | { kind: 'files'; files: ImageFile[] };

/** Brace ranges as long as LAION's (hundreds of thousands of shards) are fine; a runaway one is not. */
const MAX_EXPANDED = 10_000_000;

const isTar = (p: string) => p.toLowerCase().endsWith('.tar');

/** `shards/{00000..00127}.tar` and `a/{x,y}/*.tar` -> the paths they name, in order; a literal path must exist, a glob must match. */
async function expandShards(pattern: string): Promise<string[]> {
  const out: string[] = [];
  for (const one of braces(pattern, { expand: true, rangeLimit: MAX_EXPANDED })) {
    if (isDynamicPattern(one)) {
      const found = (await glob(one, { onlyFiles: true, absolute: false, expandDirectories: false })).sort();
      if (found.length === 0) throw new Error(`no file matches ${one}`);
      out.push(...found);
    } else {
      const info = await stat(one).catch(() => undefined);
      if (!info?.isFile()) throw new Error(`${one}: no such shard`);
      out.push(one);
    }
  }
  return out;
}

/** A file list: one image path per line, optionally `<TAB>label`; relative paths are relative to the list's folder; `#` starts a comment line. */
export async function readFileList(list: string): Promise<ImageFile[]> {
  const dir = path.dirname(list);
  const out: ImageFile[] = [];
  (await readFile(list, 'utf8')).split(/\r?\n/).forEach((line, n) => {
    if (line.trim() === '' || line.startsWith('#')) return;
    const [file, label, ...rest] = line.split('\t');
    if (rest.length > 0 || (label !== undefined && !/^\d+$/.test(label.trim()))) {
      throw new Error(`${list}:${n + 1}: expected 'path' or 'path<TAB>label' (a whole number), got '${line}'`);
    }
    out.push({ path: path.resolve(dir, file!), label: label === undefined ? 0 : Number(label) });
  });
  return out;
}

/**
 * Tar paths (any argument ending in .tar, after expansion) make a shard job; folders, image files and
 * file lists make a file job. The two do not mix: their units and outputs differ.
 */
export async function resolveInputs(args: string[], fileLists: string[] = []): Promise<Inputs> {
  const tarArgs = args.filter(isTar);
  if (tarArgs.length > 0) {
    if (tarArgs.length !== args.length || fileLists.length > 0) {
      throw new Error('give either tar shards or image folders, files and file lists, not both: they make different kinds of units');
    }
    const shards: string[] = [];
    const seen = new Set<string>();
    for (const arg of args) {
      for (const shard of await expandShards(arg)) {
        const full = path.resolve(shard);
        if (!seen.has(full)) (seen.add(full), shards.push(shard));
      }
    }
    return { kind: 'shards', shards };
  }
  const files = await findImages(args);
  for (const list of fileLists) files.push(...(await readFileList(list)));
  return { kind: 'files', files };
}
