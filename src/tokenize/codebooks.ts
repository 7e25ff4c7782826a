// Which of a model's codebooks a request uses: a checked subset in model order, and the decoder's mask for it.
import { FqError, quoted } from '../errors.ts';
import type { ServedModel } from '../serving/served-model.ts';

/** Checks a requested subset of codebooks against the model; returns them in model order (all when none is named). */
export function selectCodebooks(model: ServedModel, requested: string[] | undefined): string[] {
  const all = model.codebookNames;
  if (!requested || requested.length === 0) return all;
  const unknown = requested.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    throw new FqError('bad_request', `unknown codebook(s) ${unknown.map((n) => quoted(n)).join(', ')}; model ${model.label} has ${all.join(', ')}`);
  }
  return all.filter((n) => requested.includes(n));
}

/** The decoder's mask: 1 for each codebook used, 0 for each zeroed (partial decoding). */
export function codebookMask(model: ServedModel, codebooks: string[]): Float32Array {
  return Float32Array.from(model.codebookNames, (n) => (codebooks.includes(n) ? 1 : 0));
}
