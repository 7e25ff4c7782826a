// Reads and validates a model folder's manifest.json (written by `python -m fqgan.export`).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';

const codebookSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_]*$/),
  size: z.number().int().positive(),
  dim: z.number().int().positive(),
});

export const manifestSchema = z
  .object({
    format: z.literal('fqtok-model'),
    format_version: z.literal(1),
    variant: z.enum(['triple', 'dual']),
    preset: z.string().nullish(),
    downsample: z.number().int().positive(),
    image_size: z.number().int().positive(),
    grid: z.tuple([z.number().int().positive(), z.number().int().positive()]),
    codebooks: z.array(codebookSchema).min(1),
    opset: z.number().int().positive(),
    encoder: z.object({ file: z.string(), input: z.string(), outputs: z.array(z.string()) }),
    decoder: z.object({ file: z.string(), inputs: z.array(z.string()), mask: z.string(), output: z.string() }),
    source: z.record(z.string(), z.unknown()).optional(),
    checkpoint: z.string().nullish(),
    /** PyTorch serving weights for the torch backend ({"model": state_dict, "config"}), checked by sha256. */
    weights: z.object({ file: z.string(), sha256: z.string(), format: z.string().optional() }).nullish(),
    config: z.record(z.string(), z.unknown()).optional(),
    produced_by: z.record(z.string(), z.unknown()).optional(),
    /** Every file of the folder but the manifest, with its size and sha256: a folder is loaded only when all match. */
    files: z.record(z.string(), z.object({ bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })).optional(),
  })
  .passthrough();

export type Manifest = z.infer<typeof manifestSchema>;

export class ManifestError extends Error {}

export async function readManifest(modelDir: string): Promise<Manifest> {
  const file = path.join(modelDir, 'manifest.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ManifestError(`${file}: cannot read as JSON (${(err as Error).message})`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ManifestError(`${file}: not a valid fqtok manifest: ${problems.join('; ')}`);
  }
  const m = parsed.data;
  const names = m.codebooks.map((c) => c.name).join(',');
  if (m.encoder.outputs.join(',') !== names || m.decoder.inputs.join(',') !== names) {
    throw new ManifestError(`${file}: encoder outputs and decoder inputs must be the codebooks in order (${names})`);
  }
  return m;
}

/** What a model is, from its manifest alone, in the API's snake_case (GET /models, `fqtok models`). */
export function manifestFacts(m: Manifest) {
  return {
    variant: m.variant,
    image_size: m.image_size,
    downsample: m.downsample,
    grid: m.grid,
    codebooks: m.codebooks.map(({ name, size, dim }) => ({ name, size, dim })),
  };
}
