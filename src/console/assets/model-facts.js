// Facts about a model for people, read from its manifest.

/** Where the weights came from, from the manifest's `source` (random weights make noise, which is worth saying). */
export function weightsOf(manifest) {
  const source = manifest?.source ?? {};
  if (source.kind === 'random') return 'random (untrained: reconstructions look like noise)';
  if (source.kind === 'finetune') return `fine-tuned, ${source.steps ?? '?'} steps`;
  return source.kind ?? 'unknown';
}
