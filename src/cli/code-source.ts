// Token codes for the CLI, read lazily in chunks: a folder of `{i}_{codebook}.npy` (the reference extractor's
// layout, [1, views, h*w] each) or one .npz of arrays per codebook in any accepted layout.
import { open, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { readNpy, readNpyHeader, readNpz } from '../formats/npz.ts';
import { gridCount, toGridSet, type TokenArrays } from '../tokenize/token-layout.ts';

export interface CodeChunk {
  /** Per codebook, [images, h*w] (grids are the same bytes as flat sequences). */
  arrays: TokenArrays;
  /** A file stem per image: `{i}` or `{i}_{view}` for a folder, `{n}` for an NPZ. */
  names: string[];
}

export interface CodeSource {
  /** Images in all (views count as images). */
  count: number;
  codebooks: string[];
  /** Consecutive chunks of at least `size` images (a folder's file is never split), in order. */
  chunks(size: number): AsyncGenerator<CodeChunk>;
}

interface CodeFile {
  index: number;
  files: Map<string, string>;
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
    const images = gridCount(shape, grid);
    if (!images) throw badShape(file, shape, grid);
    codes.push({ index, files, images });
  }
  const cells = grid[0] * grid[1];
  return {
    count: codes.reduce((n, c) => n + c.images, 0),
    codebooks: codebooks!,
    async *chunks(size) {
      for (let start = 0; start < codes.length; ) {
        const group: CodeFile[] = [];
        let images = 0;
        while (start < codes.length && images < size) {
          group.push(codes[start]!);
          images += codes[start++]!.images;
        }
        const arrays: TokenArrays = {};
        for (const name of codebooks!) {
          const data = new Int32Array(images * cells);
          let offset = 0;
          for (const code of group) {
            const file = code.files.get(name)!;
            const array = readNpy(await readFile(file), `${code.index}_${name}`);
            if (gridCount(array.shape, grid) !== code.images) throw badShape(file, array.shape, grid);
            data.set(array.data, offset);
            offset += array.data.length;
          }
          arrays[name] = { shape: [images, cells], data };
        }
        const names = group.flatMap((c) => (c.images === 1 ? [`${c.index}`] : Array.from({ length: c.images }, (_, v) => `${c.index}_${v}`)));
        yield { arrays, names };
      }
    },
  };
}

async function npzSource(file: string, grid: readonly [number, number]): Promise<CodeSource> {
  // Tokens are small next to pixels (3 KB against 196 KB an image at 256 px): the NPZ is read whole.
  const arrays = readNpz(await readFile(file), Number.MAX_SAFE_INTEGER);
  const set = toGridSet(arrays, grid, 'the model');
  const cells = grid[0] * grid[1];
  const codebooks = Object.keys(arrays);
  return {
    count: set.count,
    codebooks,
    async *chunks(size) {
      for (let start = 0; start < set.count; start += size) {
        const end = Math.min(set.count, start + size);
        const part = Object.fromEntries(
          codebooks.map((n) => [n, { shape: [end - start, cells], data: (set.tokens[n] as Int32Array).subarray(start * cells, end * cells) }]),
        );
        yield { arrays: part, names: Array.from({ length: end - start }, (_, k) => `${start + k}`) };
      }
    },
  };
}

/** Opens a codes folder or an .npz; `grid` is the model's, to count the images in any layout. */
export async function openCodes(location: string, grid: readonly [number, number]): Promise<CodeSource> {
  return (await stat(location)).isDirectory() ? folderSource(location, grid) : npzSource(location, grid);
}
