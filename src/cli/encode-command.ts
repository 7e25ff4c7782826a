// `fqtok encode`: tokenises folders of images into the reference extractor's .npy layout.
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { writeNpy } from '../imaging/npz.ts';
import type { SourceImage } from '../inference/encode-images.ts';
import { findImages, type ImageFile } from './find-images.ts';
import type { EncodeOptions, EncodedFiles, TokenizerClient } from './tokenizer-client.ts';

export interface EncodeCommandOptions extends EncodeOptions {
  inputs: string[];
  out: string;
  /** Folder for `{i}.npy` class labels, as the reference writes them; none when undefined. */
  labels?: string;
}

export interface EncodeSummary {
  encoded: number;
  skipped: { file: string; reason: string }[];
  out: string;
}

/** Encodes a batch; when the batch is refused, encodes its files one by one so one bad file skips only itself. */
async function encodeTolerant(client: TokenizerClient, files: ImageFile[], options: EncodeOptions) {
  const images: SourceImage[] = await Promise.all(files.map(async (f) => ({ bytes: await readFile(f.path), name: path.basename(f.path) })));
  try {
    return [{ files, result: await client.encode(images, options) }];
  } catch (err) {
    if (files.length === 1) return [{ files, error: (err as Error).message }];
    const out: { files: ImageFile[]; result?: EncodedFiles; error?: string }[] = [];
    for (let i = 0; i < files.length; i++) {
      try {
        out.push({ files: [files[i]!], result: await client.encode([images[i]!], options) });
      } catch (e) {
        out.push({ files: [files[i]!], error: (e as Error).message });
      }
    }
    return out;
  }
}

export async function encodeCommand(client: TokenizerClient, options: EncodeCommandOptions): Promise<EncodeSummary> {
  const files = await findImages(options.inputs);
  await mkdir(options.out, { recursive: true });
  if (options.labels) await mkdir(options.labels, { recursive: true });
  const indexFile = path.join(options.out, 'index.jsonl');
  await writeFile(indexFile, '');
  const bar = new cliProgress.SingleBar({ format: 'encode [{bar}] {value}/{total} images | {eta_formatted} left', stream: process.stderr }, cliProgress.Presets.shades_classic);
  bar.start(files.length, 0);

  const summary: EncodeSummary = { encoded: 0, skipped: [], out: options.out };
  const batches: ImageFile[][] = [];
  for (let i = 0; i < files.length; i += client.batchSize) batches.push(files.slice(i, i + client.batchSize));
  // One batch in flight ahead of the one being written keeps the tokenizer busy.
  let pending = batches.length > 0 ? encodeTolerant(client, batches[0]!, options) : undefined;
  for (let b = 0; b < batches.length; b++) {
    const parts = await pending!;
    pending = b + 1 < batches.length ? encodeTolerant(client, batches[b + 1]!, options) : undefined;
    for (const part of parts) {
      if (!part.result) {
        summary.skipped.push({ file: part.files[0]!.path, reason: part.error ?? 'unknown' });
        continue;
      }
      const { tokens, codebooks, views, cells } = part.result;
      for (let k = 0; k < part.files.length; k++) {
        const i = summary.encoded++;
        const per = views * cells;
        for (const name of codebooks) {
          const data = tokens[name]!.slice(k * per, (k + 1) * per);
          await writeFile(path.join(options.out, `${i}_${name}.npy`), writeNpy({ shape: [1, views, cells], data }, 'int64'));
        }
        if (options.labels) {
          await writeFile(path.join(options.labels, `${i}.npy`), writeNpy({ shape: [1], data: Int32Array.of(part.files[k]!.label) }, 'int64'));
        }
        await appendFile(indexFile, JSON.stringify({ index: i, file: part.files[k]!.path, label: part.files[k]!.label }) + '\n');
      }
    }
    bar.increment(batches[b]!.length);
  }
  bar.stop();
  return summary;
}
