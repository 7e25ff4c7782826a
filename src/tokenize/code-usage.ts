// Code usage: over the grids sent, per codebook, the distinct codes used, the perplexity of their
// distribution and the top codes. Counted grid set by grid set, so that any number of codes takes
// constant memory; the model's manifest is all it needs (no inference runs).
import { FqError, quoted } from '../errors.ts';
import type { GridSet } from './token-layout.ts';

export interface CodebookUsage {
  codebook: string;
  size: number;
  /** Tokens counted. */
  tokens: number;
  /** Distinct codes that occur at least once. */
  used: number;
  /** Codes that never occur (dead codes), size - used. */
  dead: number;
  /** used / size. */
  usage: number;
  /** exp of the entropy (nats) of the code distribution: the number of equally likely codes it is worth. */
  perplexity: number;
  /** Most frequent codes, by count then by code. */
  top: { code: number; count: number }[];
}

/** Counts codes as chunks arrive, so that a folder of any size is summarised in constant memory. */
export class CodeCounter {
  /** Occurrences per code; float64 keeps exact integers far past 2^32 tokens. */
  readonly counts: Float64Array;
  private tokens = 0;

  constructor(
    readonly codebook: string,
    readonly size: number,
  ) {
    this.counts = new Float64Array(size);
  }

  add(values: ArrayLike<number>): void {
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= this.size) {
        throw new FqError('bad_tokens', `codebook '${this.codebook}': ${v} is not a code of [0, ${this.size})`);
      }
      this.counts[v]!++;
    }
    this.tokens += values.length;
  }

  summary(top: number): CodebookUsage {
    let used = 0;
    let entropy = 0;
    for (const count of this.counts) {
      if (count === 0) continue;
      used++;
      const p = count / this.tokens;
      entropy -= p * Math.log(p);
    }
    const codes: number[] = [];
    for (let code = 0; code < this.size; code++) if (this.counts[code]! > 0) codes.push(code);
    codes.sort((a, b) => this.counts[b]! - this.counts[a]! || a - b);
    return {
      codebook: this.codebook,
      size: this.size,
      tokens: this.tokens,
      used,
      dead: this.size - used,
      usage: used / this.size,
      perplexity: this.tokens === 0 ? 0 : Math.exp(entropy),
      top: codes.slice(0, top).map((code) => ({ code, count: this.counts[code]! })),
    };
  }
}

/** One counter per codebook the codes name, sized by the model; a codebook the model lacks is refused. */
export function countersFor(names: string[], codebooks: readonly { name: string; size: number }[], modelLabel: string): CodeCounter[] {
  const unknown = names.filter((n) => !codebooks.some((c) => c.name === n));
  if (unknown.length > 0) {
    throw new FqError('bad_tokens', `codebook(s) ${unknown.map((n) => quoted(n)).join(', ')} are not in model ${modelLabel} (${codebooks.map((c) => c.name).join(', ')})`);
  }
  return codebooks.filter((c) => names.includes(c.name)).map((c) => new CodeCounter(c.name, c.size));
}

/** One line for people (a histogram's caption). */
export function describeUsage(u: CodebookUsage): string {
  return `${u.codebook}: ${u.used}/${u.size} codes used (${(u.usage * 100).toFixed(1)}%), ${u.dead} dead, perplexity ${u.perplexity.toFixed(1)}, ${u.tokens} tokens`;
}

export interface UsageReport {
  /** The model whose codebooks the codes were counted against (name@version). */
  model: string;
  /** Source images the grids belong to. */
  images: number;
  /** Grids per codebook counted (an image with several views has several). */
  grids: number;
  codebooks: CodebookUsage[];
  /** The counts behind the summaries, e.g. for a histogram. */
  counters: CodeCounter[];
}

/** Counts the codes of grid sets (each resolved against the model's grid) for a model's codebooks. */
export async function codeUsage(
  model: { label: string; codebooks: readonly { name: string; size: number }[] },
  sets: AsyncIterable<GridSet> | Iterable<GridSet>,
  top: number,
): Promise<UsageReport> {
  let counters: CodeCounter[] | undefined;
  let images = 0;
  let grids = 0;
  for await (const set of sets) {
    counters ??= countersFor(Object.keys(set.tokens), model.codebooks, model.label);
    for (const counter of counters) {
      const values = set.tokens[counter.codebook];
      if (!values) throw new FqError('bad_tokens', `codebook '${counter.codebook}' is missing from some of the codes`);
      counter.add(values);
    }
    images += set.images;
    grids += set.count;
  }
  if (!counters) throw new FqError('bad_tokens', 'no codes to count');
  return { model: model.label, images, grids, codebooks: counters.map((c) => c.summary(top)), counters };
}
