// `fqtok stats`: codebook usage of a codes folder or .npz (distinct codes, dead codes, perplexity, top codes).
import { writeFile } from 'node:fs/promises';
import { codeUsage, describeUsage, type CodebookUsage } from '../tokenize/code-usage.ts';
import { renderUsageHistogram } from '../tokenize/usage-histogram.ts';
import { openCodes } from './code-source.ts';
import type { CliTokenizer } from './cli-tokenizer.ts';

export interface StatsCommandOptions {
  codes: string;
  model?: string;
  top: number;
  /** Where to write a PNG histogram, if wanted. */
  png?: string;
}

export interface StatsSummary {
  model: string;
  images: number;
  grids: number;
  codebooks: CodebookUsage[];
}

/** Reads the model's manifest only: counting codes runs no inference. */
export async function statsCommand(client: CliTokenizer, options: StatsCommandOptions): Promise<StatsSummary> {
  const model = await client.describe(options.model);
  const source = await openCodes(options.codes, model.grid);
  // Counted chunk by chunk: memory is the counters (one number per code), whatever the number of files.
  const sets = (async function* () {
    for await (const chunk of source.chunks(256)) yield chunk.set;
  })();
  const usage = await codeUsage(model, sets, options.top);
  if (options.png) {
    const panels = usage.counters.map((c, k) => ({ codebook: c.codebook, counts: c.counts, caption: describeUsage(usage.codebooks[k]!) }));
    await writeFile(options.png, await renderUsageHistogram(panels));
  }
  return { model: usage.model, images: usage.images, grids: usage.grids, codebooks: usage.codebooks };
}
