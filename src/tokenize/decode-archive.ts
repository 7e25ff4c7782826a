// Decodes validated token grids chunk by chunk into a streamed evaluation archive (bounded memory).
import { createSampleArchive, type SampleArchive } from '../formats/sample-archive.ts';
import type { TokenBatch } from '../backends/backend.ts';
import type { SubmitOptions } from '../serving/batcher.ts';
import { decodeTokensRgb } from './decode-grids.ts';
import { pipelined } from './pipelined.ts';
import type { ServedModel } from '../serving/served-model.ts';

export interface DecodeArchiveOptions {
  codebooks: string[];
  /** Images per decode call; a few calls are in flight at once. */
  chunk: number;
}

/** Starts decoding at once; read the archive's output. A failure midway destroys the output with the error. */
export function decodeToArchive(tokenizer: ServedModel, tokens: TokenBatch, count: number, options: DecodeArchiveOptions, submit: SubmitOptions = {}): SampleArchive {
  const [gh, gw] = tokenizer.model.manifest.grid;
  const down = tokenizer.model.manifest.downsample;
  const archive = createSampleArchive({ count, height: gh * down, width: gw * down });
  const cells = gh * gw;
  const starts = Array.from({ length: Math.ceil(count / options.chunk) }, (_, k) => k * options.chunk);
  const decodeChunk = (start: number) => {
    const end = Math.min(count, start + options.chunk);
    const part = Object.fromEntries(Object.entries(tokens).map(([name, data]) => [name, data.subarray(start * cells, end * cells)]));
    return decodeTokensRgb(tokenizer, part, end - start, options.codebooks, submit);
  };
  (async () => {
    for await (const { rgb } of pipelined(starts, decodeChunk, 2)) await archive.write(rgb);
    archive.end();
  })().catch((err: Error) => archive.destroy(err));
  return archive;
}
