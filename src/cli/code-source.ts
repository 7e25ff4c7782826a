// Token codes for the CLI, read lazily in chunks: a folder of `{i}_{codebook}.npy` (the reference extractor's
// layout, [1, views, h*w] each) or one .npz of arrays per codebook in any accepted layout.
import { open, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { readNpy, readNpyHeader, readNpz } from '../formats/npz.ts';
import { layoutOf, toGridSet, type GridSet } from '../tokenize/token-layout.ts';

export interface CodeChunk {
  /** The chunk's grids, resolved against the model's grid. */
  set: GridSet;
  /** A file stem per grid: `{i}` or `{i}_{view}` for a folder, `{n}` for an NPZ. */
  names: string[];
}

export interface CodeSource {
  /** Grids in all (one per image and view). */
  grids: number;
  codebooks: string[];
  /** Consecutive chunks of `size` grids (the last may hold fewer), in order. */
  chunks(size: number): AsyncGenerator<CodeChunk>;
}

interface CodeFile {
  index: number;
  files: Map<string, string>;
  /** Grids in the file (its views). */
  grids: number;
  /** Images in the file (1 in the extractor's [1, views, h*w]). */
  images: number;
}

const CODE_FILE = /^(\d+)_([a-z][a-z0-9_]*)\.npy$/;

async function npyShape(file: string): Promise<number[]> {
  const handle = await open(file, 'r');
  try {
    const head = new Uint8Array(4096);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return readNpyHeader(head.subarray(0, bytesRead), path.basename(file)).shape;
  } finally {
    await handle.close();
  }
}

function badShape(where: string, shape: number[], grid: readonly [number, number]): Error {
  return new Error(`${where}: shape [${shape.join(', ')}] holds no ${grid[0]}x${grid[1]} grids (expected [1, views, ${grid[0] * grid[1]}] as the extractor writes)`);
}

function concatInts(parts: Int32Array[]): Int32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function folderSource(dir: string, grid: readonly [number, number]): Promise<CodeSource> {
  const byIndex = new Map<number, Map<string, string>>();
  for (const file of await readdir(dir)) {
    const match = CODE_FILE.exec(file);
    if (!match) continue;
    const i = Number(match[1]);
    if (!byIndex.has(i)) byIndex.set(i, new Map());
    byIndex.get(i)!.set(match[2]!, path.join(dir, file));
  }
  if (byIndex.size === 0) throw new Error(`${dir} holds no {i}_{codebook}.npy files`);
  const codes: CodeFile[] = [];
  let codebooks: string[] | undefined;
  for (const index of [...byIndex.keys()].sort((a, b) => a - b)) {
    const files = byIndex.get(index)!;
    const names = [...files.keys()].sort();
    codebooks ??= names;
    if (names.join() !== codebooks.join()) throw new Error(`codes ${index} have codebooks ${names.join(', ')}; the others have ${codebooks.join(', ')}`);
    // Only the header is read here: the count must be known before the first image is written.
    const file = files.get(names[0]!)!;
    const shape = await npyShape(file);
    const layout = layoutOf(shape, grid);
    if (!layout?.grids) throw badShape(file, shape, grid);
    codes.push({ index, files, ...layout });
  }
  const cells = grid[0] * grid[1];
  return {
    grids: codes.reduce((n, c) => n + c.grids, 0),
    codebooks: codebooks!,
    async *chunks(size) {
      // Exactly `size` grids a chunk (the last may hold fewer): a file's views may be cut across two
      // chunks, so that a chunk is never more than one inference run. One file is read at a time.
      let parts: Record<string, Int32Array[]> = {};
      let names: string[] = [];
      let grids = 0;
      let images = 0;
      const flush = (): CodeChunk => {
        const tokens = Object.fromEntries(Object.entries(parts).map(([name, list]) => [name, concatInts(list)]));
        const chunk = { set: { tokens, count: grids, images, grid }, names };
        parts = {};
        names = [];
        grids = images = 0;
        return chunk;
      };
      for (const code of codes) {
        const data: Record<string, Int32Array> = {};
        for (const name of codebooks!) {
          const file = code.files.get(name)!;
          const array = readNpy(await readFile(file), `${code.index}_${name}`);
          if (layoutOf(array.shape, grid)?.grids !== code.grids) throw badShape(file, array.shape, grid);
          data[name] = array.data;
        }
        for (let v = 0; v < code.grids; ) {
          const take = Math.min(code.grids - v, size - grids);
          for (const name of codebooks!) (parts[name] ??= []).push(data[name]!.subarray(v * cells, (v + take) * cells));
          for (let k = v; k < v + take; k++) names.push(code.grids === 1 ? `${code.index}` : `${code.index}_${k}`);
          v += take;
          grids += take;
          if (v === code.grids) images += code.images; // an image counts where its last view is
          if (grids === size) yield flush();
        }
      }
      if (grids > 0) yield flush();
    },
  };
}

async function npzSource(file: string, grid: readonly [number, number]): Promise<CodeSource> {
  // Tokens are small next to pixels (3 KB against 196 KB an image at 256 px): the NPZ is read whole.
  const arrays = await readNpz(await readFile(file), { maxBytes: Number.MAX_SAFE_INTEGER });
  const set = toGridSet(arrays, grid, 'the model');
  const cells = grid[0] * grid[1];
  const codebooks = Object.keys(arrays);
  const viewsPerImage = set.count / set.images;
  return {
    grids: set.count,
    codebooks,
    async *chunks(size) {
      for (let start = 0; start < set.count; start += size) {
        const end = Math.min(set.count, start + size);
        const tokens = Object.fromEntries(codebooks.map((n) => [n, (set.tokens[n] as Int32Array).subarray(start * cells, end * cells)]));
        // An image counts in the chunk that holds its last view (a chunk may cut an image's views apart).
        const images = Math.floor(end / viewsPerImage) - Math.floor(start / viewsPerImage);
        yield { set: { tokens, count: end - start, images, grid }, names: Array.from({ length: end - start }, (_, k) => `${start + k}`) };
      }
    },
  };
}

/** Opens a codes folder or an .npz; `grid` is the model's, to count the images in any layout. */
export async function openCodes(location: string, grid: readonly [number, number]): Promise<CodeSource> {
  return (await stat(location)).isDirectory() ? folderSource(location, grid) : npzSource(location, grid);
}
