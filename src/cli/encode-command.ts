// `fqtok encode`: tokenises folders of images into the reference extractor's .npy layout.
//
// A pipeline, so that an accelerator never waits for the CPU: up to BATCHES_IN_FLIGHT batches are
// under way at once, each reading its files, decoding and cropping them (the preprocessing worker
// pool) and then running inference; while one batch is in inference the next ones are being
// preprocessed. Results are written in file order as batches finish. Memory in flight is bounded by
// BATCHES_IN_FLIGHT x batch size x views x (file bytes + about 1 MB of crops and tensor per view).
// One batch size: a batch's crops are one inference run (the client's run size).
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { writeNpy } from '../formats/npz.ts';
import type { SourceImage } from '../tokenize/encode-images.ts';
import { VIEWS } from '../tokenize/views.ts';
import { findImages, type ImageFile } from './find-images.ts';
import { BATCHES_IN_FLIGHT, type EncodeOptions, type EncodedFiles, type CliTokenizer } from './cli-tokenizer.ts';

export interface EncodeCommandOptions extends EncodeOptions {
  inputs: string[];
  out: string;
  /** Folder for `{i}.npy` class labels, as the reference writes them; none when undefined. */
  labels?: string;
  /** Images per batch; default: the client's run size (crops) divided by the views per image. */
  batchSize?: number;
  /** Draw a progress bar on stderr (only drawn when stderr is a terminal). */
  progress?: boolean;
}

export interface EncodeSummary {
  encoded: number;
  skipped: { file: string; reason: string }[];
  out: string;
  batchSize: number;
  seconds: number;
}

/** The outcome for some files of a batch: their tokens, or why they were skipped. */
type BatchPart = { files: ImageFile[]; result: EncodedFiles } | { files: ImageFile[]; error: string };

/** Images per batch when the user does not say: one inference run's worth of crops. */
export async function defaultBatchSize(client: CliTokenizer, options: EncodeOptions): Promise<number> {
  return Math.max(1, Math.floor((await client.runSize(options.model)) / VIEWS[options.augment].length));
}

/**
 * Encodes a batch; when the batch is refused, encodes its files one by one so one bad file skips
 * only itself. Never rejects: a batch that fails while earlier ones are still awaited must not
 * become an unhandled rejection.
 */
async function encodeTolerant(client: CliTokenizer, files: ImageFile[], options: EncodeOptions): Promise<BatchPart[]> {
  const read = await Promise.all(files.map((f) => readFile(f.path).then((bytes) => ({ bytes, name: path.basename(f.path) }), (err: Error) => err)));
  const out: BatchPart[] = [];
  const readable: ImageFile[] = [];
  const images: SourceImage[] = [];
  read.forEach((r, i) => {
    if (r instanceof Error) out.push({ files: [files[i]!], error: r.message });
    else (readable.push(files[i]!), images.push(r));
  });
  if (readable.length === 0) return out;
  try {
    out.push({ files: readable, result: await client.encode(images, options) });
  } catch (err) {
    if (readable.length === 1) out.push({ files: readable, error: (err as Error).message });
    else for (let i = 0; i < readable.length; i++) {
      try {
        out.push({ files: [readable[i]!], result: await client.encode([images[i]!], options) });
      } catch (e) {
        out.push({ files: [readable[i]!], error: (e as Error).message });
      }
    }
  }
  // Written in the order the files were listed, whatever failed where.
  const order = new Map(files.map((f, i) => [f, i]));
  return out.sort((a, b) => order.get(a.files[0]!)! - order.get(b.files[0]!)!);
}

function progressBar(enabled: boolean, total: number) {
  const bar = new cliProgress.SingleBar(
    {
      format: 'encode [{bar}] {value}/{total} images | {rate} images/s | {eta_formatted} left',
      stream: process.stderr,
      // cli-progress draws nothing when stderr is not a terminal; logs and pipes stay clean.
      noTTYOutput: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  if (enabled) bar.start(total, 0, { rate: '-' });
  return {
    increment(n: number, done: number) {
      if (enabled) bar.increment(n, { rate: (done / ((performance.now() - started) / 1000)).toFixed(1) });
    },
    stop() {
      if (enabled) bar.stop();
    },
  };
}

export async function encodeCommand(client: CliTokenizer, options: EncodeCommandOptions): Promise<EncodeSummary> {
  const started = performance.now();
  const files = await findImages(options.inputs);
  const batchSize = options.batchSize ?? (await defaultBatchSize(client, options));
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
  await mkdir(options.out, { recursive: true });
  if (options.labels) await mkdir(options.labels, { recursive: true });
  const indexFile = path.join(options.out, 'index.jsonl');
  await writeFile(indexFile, '');
  const bar = progressBar(options.progress ?? true, files.length);

  const summary: EncodeSummary = { encoded: 0, skipped: [], out: options.out, batchSize, seconds: 0 };
  const batches: ImageFile[][] = [];
  for (let i = 0; i < files.length; i += batchSize) batches.push(files.slice(i, i + batchSize));
  const inFlight: Promise<BatchPart[]>[] = [];
  let next = 0;
  const startNext = () => {
    if (next < batches.length) inFlight.push(encodeTolerant(client, batches[next++]!, options));
  };
  for (let i = 0; i < BATCHES_IN_FLIGHT; i++) startNext();
  let done = 0;
  for (let b = 0; b < batches.length; b++) {
    const parts = await inFlight.shift()!;
    startNext();
    for (const part of parts) {
      if ('error' in part) {
        summary.skipped.push({ file: part.files[0]!.path, reason: part.error });
        continue;
      }
      await writeCodes(part.files, part.result, summary, options, indexFile);
    }
    done += batches[b]!.length;
    bar.increment(batches[b]!.length, done);
  }
  bar.stop();
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/** `{i}_{codebook}.npy` (int64 [1, views, h*w]) per file, its label, and its line in index.jsonl. */
async function writeCodes(files: ImageFile[], result: EncodedFiles, summary: EncodeSummary, options: EncodeCommandOptions, indexFile: string) {
  const { tokens, codebooks, views, cells } = result;
  const per = views * cells;
  for (let k = 0; k < files.length; k++) {
    const i = summary.encoded++;
    for (const name of codebooks) {
      const data = tokens[name]!.slice(k * per, (k + 1) * per);
      await writeFile(path.join(options.out, `${i}_${name}.npy`), writeNpy({ shape: [1, views, cells], data }, 'int64'));
    }
    if (options.labels) {
      await writeFile(path.join(options.labels, `${i}.npy`), writeNpy({ shape: [1], data: Int32Array.of(files[k]!.label) }, 'int64'));
    }
    await appendFile(indexFile, JSON.stringify({ index: i, file: files[k]!.path, label: files[k]!.label }) + '\n');
  }
}
