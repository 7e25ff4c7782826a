// Encode: image files -> reference crops (worker threads) -> one tensor -> tokenizer -> grids per view.
import { FqError } from '../errors.ts';
import { cropsToNchw } from '../imaging/preprocess.ts';
import type { TokenBatch } from './backend.ts';
import type { SubmitOptions } from './batcher.ts';
import type { Tokenizer } from './tokenizer.ts';
import { VIEWS, type Augment } from './views.ts';

import type { Orientation } from '../imaging/decode.ts';

export type { Orientation };

/** What encode needs from preprocessing: bytes in, the crops of every view out (HWC RGB uint8). */
export interface CropSource {
  preprocess(input: Uint8Array, options: { orientation: Orientation; augment: Augment }): Promise<Uint8Array[]>;
}

export interface SourceImage {
  bytes: Uint8Array;
  name?: string;
}

export interface EncodeImagesOptions {
  augment: Augment;
  orientation: Orientation;
  /** Codebooks to return (all when undefined). */
  codebooks?: string[];
}

export interface EncodedBatch {
  views: readonly string[];
  /** Number of source images. */
  count: number;
  grid: readonly [number, number];
  codebooks: string[];
  /** [count * views * h * w] per returned codebook, image-major then view. */
  tokens: TokenBatch;
}

/** Checks a requested subset of codebooks against the model; returns them in model order. */
export function selectCodebooks(tokenizer: Tokenizer, requested: string[] | undefined): string[] {
  const all = tokenizer.codebookNames;
  if (!requested || requested.length === 0) return all;
  const unknown = requested.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    throw new FqError('bad_request', `unknown codebook(s) ${unknown.join(', ')}; model ${tokenizer.label} has ${all.join(', ')}`);
  }
  return all.filter((n) => requested.includes(n));
}

export async function encodeImages(
  tokenizer: Tokenizer,
  cropSource: CropSource,
  images: SourceImage[],
  options: EncodeImagesOptions,
  submit: SubmitOptions = {},
): Promise<EncodedBatch> {
  const codebooks = selectCodebooks(tokenizer, options.codebooks);
  const views = VIEWS[options.augment];
  const crops = await Promise.all(
    images.map(async (image, item) => {
      try {
        return await cropSource.preprocess(image.bytes, { orientation: options.orientation, augment: options.augment });
      } catch (err) {
        if (err instanceof FqError) {
          const where = image.name ? `image ${item} (${image.name})` : `image ${item}`;
          throw new FqError(err.kind, `${where}: ${err.message}`, { item });
        }
        throw err;
      }
    }),
  );
  const flat = crops.flat();
  if (flat.length !== images.length * views.length) throw new Error(`preprocessing produced ${flat.length} crops, expected ${images.length * views.length}`);
  const size = tokenizer.model.manifest.image_size;
  const all = await tokenizer.encode(cropsToNchw(flat, size), flat.length, submit);
  const tokens: TokenBatch = {};
  for (const name of codebooks) tokens[name] = all[name]!;
  return { views, count: images.length, grid: tokenizer.model.manifest.grid, codebooks, tokens };
}
