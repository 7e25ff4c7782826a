// `fqtok stats`: codebook usage of a codes folder or .npz (distinct codes, dead codes, perplexity, top codes).
import { writeFile } from 'node:fs/promises';
import { countersFor, describeUsage, type CodebookUsage } from '../tokenize/code-usage.ts';
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

export async function statsCommand(
  client: CliTokenizer,
  options: StatsCommandOptions,
): Promise<{ model: string; images: number; codebooks: CodebookUsage[] }> {
  const model = await client.describe(options.model);
  const source = await openCodes(options.codes, model.grid);
  const counters = countersFor(source.codebooks, model.codebooks, model.label);
  // Counted chunk by chunk: memory is the counters (one number per code), whatever the number of files.
  for await (const chunk of source.chunks(256)) for (const counter of counters) counter.add(chunk.arrays[counter.codebook]!.data);
  const codebooks = counters.map((c) => c.summary(options.top));
  if (options.png) {
    const panels = counters.map((c, k) => ({ codebook: c.codebook, counts: c.counts, caption: describeUsage(codebooks[k]!) }));
    await writeFile(options.png, await renderUsageHistogram(panels));
  }
  return { model: model.label, images: source.count, codebooks };
}
