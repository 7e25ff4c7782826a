// The bulk CLI's view of a tokenizer: in this process (registry + preprocessing) or a server over HTTP.
import { readNpz } from '../imaging/npz.ts';
import type { Config } from '../config.ts';
import { createPreprocessor } from '../imaging/preprocess.ts';
import { decodeGrids, type GridSet } from '../inference/decode-grids.ts';
import { encodeImages, selectCodebooks, type SourceImage } from '../inference/encode-images.ts';
import { ModelRegistry } from '../inference/registry.ts';
import type { Augment } from '../inference/views.ts';
import type { Orientation } from '../imaging/decode.ts';

export interface EncodeOptions {
  model?: string;
  augment: Augment;
  orientation: Orientation;
}

export interface EncodedFiles {
  /** Per codebook, [count, views, h*w] in C order. */
  tokens: Record<string, Int32Array>;
  codebooks: string[];
  views: number;
  cells: number;
}

export interface TokenizerClient {
  /** Largest batch worth sending at once. */
  batchSize: number;
  encode(images: SourceImage[], options: EncodeOptions): Promise<EncodedFiles>;
  decode(set: GridSet, options: { model?: string; format: 'png' | 'jpeg' | 'webp' }): Promise<Buffer[]>;
  close(): Promise<void>;
}

export async function localClient(config: Config): Promise<TokenizerClient> {
  const registry = new ModelRegistry(config);
  await registry.loadModelsDir(config.modelsDir);
  const preprocessor = createPreprocessor({
    maxInputPixels: config.maxInputPixels,
    maxDecodePixelsInFlight: config.maxDecodePixelsInFlight,
    threads: config.preprocessThreads,
  }); // crops to each model's image_size
  return {
    batchSize: config.maxBatch,
    async encode(images, options) {
      const tokenizer = registry.get(options.model);
      const batch = await encodeImages(tokenizer, preprocessor, images, { augment: options.augment, orientation: options.orientation });
      return { tokens: batch.tokens, codebooks: batch.codebooks, views: batch.views.length, cells: batch.grid[0] * batch.grid[1] };
    },
    async decode(set, options) {
      const tokenizer = registry.get(options.model);
      return decodeGrids(tokenizer, set, { codebooks: selectCodebooks(tokenizer, undefined), format: options.format });
    },
    async close() {
      await registry.close();
      await preprocessor.close();
    },
  };
}

async function expectOk(response: Response): Promise<Response> {
  if (response.ok) return response;
  const text = await response.text();
  let detail = text;
  try {
    detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
  } catch {
    /* not problem+json */
  }
  throw new Error(`server answered ${response.status}: ${detail}`);
}

export function remoteClient(baseUrl: string): TokenizerClient {
  const url = (p: string, q: Record<string, string | undefined>) => {
    const u = new URL(p, baseUrl);
    for (const [k, v] of Object.entries(q)) if (v !== undefined) u.searchParams.set(k, v);
    return u;
  };
  return {
    batchSize: 16,
    async encode(images, options) {
      const form = new FormData();
      images.forEach((image, i) => form.append('image', new Blob([new Uint8Array(image.bytes)]), image.name ?? `image-${i}`));
      const response = await expectOk(
        await fetch(url('/encode', { model: options.model, augment: options.augment, orientation: options.orientation, format: 'npz' }), {
          method: 'POST',
          body: form,
        }),
      );
      const arrays = readNpz(new Uint8Array(await response.arrayBuffer()), 1 << 30);
      const codebooks = Object.keys(arrays);
      const shape = arrays[codebooks[0]!]!.shape; // [N, A, h, w]
      return {
        tokens: Object.fromEntries(codebooks.map((n) => [n, arrays[n]!.data])),
        codebooks,
        views: shape[1]!,
        cells: shape[2]! * shape[3]!,
      };
    },
    async decode(set, options) {
      const images = Array.from({ length: set.count }, (_, n) => ({
        tokens: Object.fromEntries(
          Object.entries(set.tokens).map(([name, data]) => [
            name,
            Array.from({ length: set.grid[0] }, (_, r) =>
              Array.from({ length: set.grid[1] }, (_, c) => data[(n * set.grid[0] + r) * set.grid[1] + c]!),
            ),
          ]),
        ),
      }));
      const response = await expectOk(
        await fetch(url('/decode', { model: options.model, format: options.format }), {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify({ images }),
        }),
      );
      const body = (await response.json()) as { images: { data: string }[] };
      return body.images.map((i) => Buffer.from(i.data, 'base64'));
    },
    async close() {},
  };
}
