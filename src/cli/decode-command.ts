// `fqtok decode`: turns a folder of `{i}_{codebook}.npy` codes (the reference layout) back into images.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { readNpy } from '../imaging/npz.ts';
import type { TokenizerClient } from './tokenizer-client.ts';

export interface DecodeCommandOptions {
  codes: string;
  out: string;
  model?: string;
  format: 'png' | 'jpeg' | 'webp';
}

export async function decodeCommand(client: TokenizerClient, options: DecodeCommandOptions): Promise<{ decoded: number; out: string }> {
  const byIndex = new Map<number, Map<string, string>>();
  for (const file of await readdir(options.codes)) {
    const match = /^(\d+)_([a-z][a-z0-9_]*)\.npy$/.exec(file);
    if (!match) continue;
    const i = Number(match[1]);
    if (!byIndex.has(i)) byIndex.set(i, new Map());
    byIndex.get(i)!.set(match[2]!, path.join(options.codes, file));
  }
  await mkdir(options.out, { recursive: true });
  const indices = [...byIndex.keys()].sort((a, b) => a - b);
  const bar = new cliProgress.SingleBar({ format: 'decode [{bar}] {value}/{total} | {eta_formatted} left', stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar.start(indices.length, 0);
  let decoded = 0;
  for (const i of indices) {
    const tokens: Record<string, Int32Array> = {};
    let views = 1;
    let cells = 0;
    for (const [name, file] of byIndex.get(i)!) {
      const array = readNpy(await readFile(file), `${i}_${name}`);
      if (array.shape.length !== 3 || array.shape[0] !== 1) {
        throw new Error(`${file}: shape [${array.shape.join(', ')}], expected the reference's [1, views, h*w]`);
      }
      views = array.shape[1]!;
      cells = array.shape[2]!;
      tokens[name] = array.data;
    }
    const side = Math.round(Math.sqrt(cells));
    if (side * side !== cells) throw new Error(`${i}: ${cells} tokens per view is not a square grid`);
    const images = await client.decode({ tokens, count: views, grid: [side, side] }, { model: options.model, format: options.format });
    const ext = options.format === 'jpeg' ? 'jpg' : options.format;
    for (let v = 0; v < images.length; v++) {
      await writeFile(path.join(options.out, images.length === 1 ? `${i}.${ext}` : `${i}_${v}.${ext}`), images[v]!);
    }
    decoded++;
    bar.increment();
  }
  bar.stop();
  return { decoded, out: options.out };
}
