// Encodes one batch of samples, so that a bad image costs only itself: a refused batch is retried image by
// image, and an image the tokenizer refuses is an outcome, not a failure. Anything that is not the image's
// fault (the backend died, the server is down) fails the batch: the unit is then retried by a rerun.
import { FqError } from '../../errors.ts';
import type { SourceImage } from '../../tokenize/encode-images.ts';
import { ServerAnswer, type CliTokenizer, type EncodeOptions } from '../cli-tokenizer.ts';
import type { UnitSample } from './unit-samples.ts';

export type SampleOutcome = { sample: UnitSample; tokens: Record<string, Int32Array> } | { sample: UnitSample; error: string };

/** Kinds of refusal that are about the image itself (undecodable, too large, not an image, too slow alone). */
const IMAGE_FAULTS: ReadonlySet<string> = new Set(['bad_image', 'too_large', 'unsupported_media_type', 'timeout']);

export function isImageFault(err: unknown): boolean {
  if (err instanceof FqError) return IMAGE_FAULTS.has(err.kind);
  if (err instanceof ServerAnswer) return err.status === 413 || err.status === 415 || err.status === 422;
  return false;
}

function split(samples: UnitSample[], result: Awaited<ReturnType<CliTokenizer['encode']>>): SampleOutcome[] {
  const per = result.views * result.cells;
  return samples.map((sample, k) => ({
    sample,
    tokens: Object.fromEntries(result.codebooks.map((name) => [name, result.tokens[name]!.slice(k * per, (k + 1) * per)])),
  }));
}

export async function encodeBatch(client: CliTokenizer, samples: UnitSample[], options: EncodeOptions): Promise<SampleOutcome[]> {
  const outcomes = new Map<UnitSample, SampleOutcome>();
  const ready: UnitSample[] = [];
  const images: SourceImage[] = [];
  await Promise.all(
    samples.map(async (sample) => {
      if (!sample.read) return outcomes.set(sample, { sample, error: sample.missing ?? 'no image' });
      try {
        const bytes = await sample.read();
        ready.push(sample);
        images.push({ bytes, name: sample.name });
      } catch (err) {
        outcomes.set(sample, { sample, error: (err as Error).message }); // unreadable file: the file's fault
      }
    }),
  );
  if (ready.length > 0) {
    try {
      for (const o of split(ready, await client.encode(images, options))) outcomes.set(o.sample, o);
    } catch (err) {
      if (ready.length === 1) {
        if (!isImageFault(err)) throw err;
        outcomes.set(ready[0]!, { sample: ready[0]!, error: (err as Error).message });
      } else for (let i = 0; i < ready.length; i++) {
        try {
          for (const o of split([ready[i]!], await client.encode([images[i]!], options))) outcomes.set(o.sample, o);
        } catch (e) {
          if (!isImageFault(e)) throw e;
          outcomes.set(ready[i]!, { sample: ready[i]!, error: (e as Error).message });
        }
      }
    }
  }
  return samples.map((s) => outcomes.get(s)!); // in the samples' order, whatever failed where
}
