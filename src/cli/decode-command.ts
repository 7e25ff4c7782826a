// `fqtok decode`: codes (a folder of `{i}_{codebook}.npy` as the extractor writes, or an .npz of sequences
// or grids) back into images: one file each into a folder, or one evaluation archive (`--out x.npz`).
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import cliProgress from 'cli-progress';
import { createSampleArchive } from '../formats/sample-archive.ts';
import type { ImageFormat } from '../imaging/write-image.ts';
import { pipelined } from '../tokenize/pipelined.ts';
import { openCodes, type CodeChunk, type CodeSource } from './code-source.ts';
import { BATCHES_IN_FLIGHT, type ModelInfo, type CliTokenizer } from './cli-tokenizer.ts';

export interface DecodeCommandOptions {
  codes: string;
  /** A folder for image files, or a path ending in .npz for one archive. */
  out: string;
  model?: string;
  format: ImageFormat;
}

export interface DecodeSummary {
  decoded: number;
  out: string;
}

/** A progress bar with images/s; cli-progress draws nothing when stderr is not a terminal. */
function progress(total: number) {
  const bar = new cliProgress.SingleBar(
    { format: 'decode [{bar}] {value}/{total} | {rate} img/s | {eta_formatted} left', stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(total, 0, { rate: '-' });
  let done = 0;
  return {
    add(n: number) {
      done += n;
      bar.update(done, { rate: (done / ((performance.now() - started) / 1000)).toFixed(1) });
    },
    stop: () => bar.stop(),
  };
}

export function isArchivePath(out: string): boolean {
  return out.toLowerCase().endsWith('.npz');
}

export async function decodeCommand(client: CliTokenizer, options: DecodeCommandOptions): Promise<DecodeSummary> {
  const model = await client.describe(options.model);
  const source = await openCodes(options.codes, model.grid);
  return isArchivePath(options.out) ? decodeToArchiveFile(client, source, model, options) : decodeToFolder(client, source, options);
}

async function decodeToFolder(client: CliTokenizer, source: CodeSource, options: DecodeCommandOptions): Promise<DecodeSummary> {
  await mkdir(options.out, { recursive: true });
  const ext = options.format === 'jpeg' ? 'jpg' : options.format;
  const bar = progress(source.grids);
  let decoded = 0;
  try {
    const step = async (chunk: CodeChunk) => ({
      names: chunk.names,
      files: await client.decode(chunk.set, { model: options.model, format: options.format }),
    });
    const chunks = source.chunks(await client.runSize(options.model)); // a chunk is one inference run
    for await (const { names, files } of pipelined(chunks, step, BATCHES_IN_FLIGHT)) {
      for (let k = 0; k < files.length; k++) await writeFile(path.join(options.out, `${names[k]}.${ext}`), files[k]!);
      decoded += files.length;
      bar.add(files.length);
    }
  } finally {
    bar.stop();
  }
  return { decoded, out: options.out };
}

/**
 * Streams the archive into `<out>.partial` and renames it at the end, so an interrupted or failed run
 * never leaves a file under the final name (and a partial one has no central directory: numpy refuses it).
 * No resume: a rerun starts over.
 */
async function decodeToArchiveFile(client: CliTokenizer, source: CodeSource, model: ModelInfo, options: DecodeCommandOptions): Promise<DecodeSummary> {
  await mkdir(path.dirname(path.resolve(options.out)), { recursive: true });
  const partial = `${options.out}.partial`;
  const archive = createSampleArchive({ count: source.grids, height: model.height, width: model.width });
  const written = pipeline(archive.output, createWriteStream(partial));
  written.catch(() => {}); // awaited below; a failure also surfaces through archive.write
  // A signal stops the archive; the loop below then fails, removes the partial file and the client is
  // closed before exiting (exiting at once, with onnxruntime's threads running, aborts the process).
  const onSignal = (signal: NodeJS.Signals) => archive.destroy(new Error(`interrupted by ${signal}; ${partial} removed`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const bar = progress(source.grids);
  let decoded = 0;
  try {
    // A chunk is one inference run; with a few in flight the model stays busy while earlier ones are written.
    const chunks = source.chunks(await client.runSize(options.model));
    for await (const { rgb } of pipelined(chunks, (chunk) => client.decodeRgb(chunk.set, { model: options.model }), BATCHES_IN_FLIGHT)) {
      await archive.write(rgb);
      const n = rgb.length / (model.height * model.width * 3);
      decoded += n;
      bar.add(n);
    }
    archive.end();
    await written;
    await rename(partial, options.out);
  } catch (err) {
    archive.destroy(err as Error);
    await written.catch(() => {});
    await rm(partial, { force: true });
    throw err;
  } finally {
    bar.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return { decoded, out: options.out };
}
